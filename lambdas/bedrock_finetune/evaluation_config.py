"""The evaluation's configuration: one small type, shared by the configuration loader (which the
``finetune`` CLI imports, so it stays light) and the EvaluateCandidate settings."""

from __future__ import annotations

from dataclasses import dataclass

#: The metrics every prompt is scored on; ``format`` only when a format is declared, ``judge`` only
#: with a judge model.
METRICS = ("exact_match", "token_f1", "rouge_l", "format", "judge")
FORMATS = ("none", "json")


@dataclass(frozen=True)
class EvaluationConfig:
    """How a new version is scored against the line's current model, and what it must reach.

    ``metric``: the aggregate the gate compares. ``gate_margin``: the candidate fails when its score is
    below the current model's by more than this. ``gate_floor``: it fails below this absolute score
    (None: no floor). ``sample_size``: prompts taken from ``validation.jsonl`` when the run has no
    ``evaluation.jsonl``. ``calls_per_invocation`` bounds the Converse calls of one Lambda invocation
    (the state machine loops until every prompt is scored); its default is every call an evaluation
    can need (1,000 prompts x 2 models x 2 with a judge), so the Lambda's remaining time bounds a step.
    """

    enabled: bool = True
    format: str = "none"
    judge_model_id: str | None = None
    metric: str = "token_f1"
    gate_margin: float = 0.0
    gate_floor: float | None = None
    sample_size: int = 100
    max_tokens: int = 1024
    calls_per_invocation: int = 4000
    bootstrap_resamples: int = 1000
