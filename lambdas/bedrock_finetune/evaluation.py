"""Scoring a new version on held-out prompts against the line's current model, before it replaces it.

Prompts come from ``datasets/<run>/evaluation.jsonl`` (up to 1,000 records, in the model's training
format, whose last assistant turn is the reference, or as ``{"prompt", "system"?, "reference"?,
"category"?}``), else from a seeded sample of ``validation.jsonl`` (Bedrock does not train on it),
else the run is not evaluated and says why.

Each prompt goes through Converse to the candidate and to the current model (the line's endpoint,
or the base model for a first version); each answer is scored against the reference: exact match,
token F1, ROUGE-L (longest common subsequence, F-measure), a format check when one is declared
(``json``: the answer parses as JSON), and optionally a judge model's 1-5 score with its reasoning
(rescaled to 0-1). Each aggregate carries a seeded bootstrap 95% confidence interval. The gate
compares one metric: the candidate fails below the current model's score by more than a margin, or
below an absolute floor.

Where the candidate runs: on an on-demand line, on a temporary custom model deployment of its own
(deterministic name, tagged, deleted when the evaluation ends, and by the failure clean-up), beside
the line's endpoint; on a provisioned line, the current model is scored before the swap and the
candidate after it, and a candidate that fails is swapped back (or, for a first version, its
throughput is deleted).

Metrics' limits: exact match and token overlap reward copying the reference's wording; ROUGE-L
rewards word order; none of them knows whether an answer is right in other words. A judge model
reads meaning but has its own biases. Bootstrap intervals describe the prompts' sampling, not
the models' randomness (temperature 0).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune import endpoint_wait, pricing
from bedrock_finetune.bedrock_jobs import _call, classify, to_bedrock_tags
from bedrock_finetune.errors import BedrockPermanentError, BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.evaluation_config import EvaluationConfig
from bedrock_finetune.evaluation_set import (
    MAX_RECORDS,
    EvaluationPrompt,
    parse_prompts,
    text_of,
)
from bedrock_finetune.layout import EVALUATION_FILE
from bedrock_finetune.lineage import run_tags
from bedrock_finetune.naming import evaluation_deployment_name
from bedrock_finetune.notifications import publish
from bedrock_finetune.quota_wait import wait_or_fail
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.serving import deployment_quota_notice
from bedrock_finetune.settings import EvaluationSettings

SCHEMA_VERSION = 1
RUBRIC = Path(__file__).resolve().parent / "rubrics" / "correctness.md"
CANDIDATE, CURRENT = "candidate", "current"
#: The gate's words in the notice and the line record.
PROMOTED, KEPT = "promoted", "kept"
_WORD = re.compile(r"\w+", re.UNICODE)
_SCORE = re.compile(r"score\s*[:=]\s*([1-5])\b", re.IGNORECASE)
_BASE_VARIANT = re.compile(r":\d+k$")
#: Polls of the candidate's temporary deployment before the evaluation gives up on it. With the
#: scoring steps (at most MAX_SCORING_STEPS of 7 history events), the evaluation adds at most
#: 120 x 9 + 100 x 7 = 1,780 events: inside the 5,000 that stacks/config.py's POLLING_EVENT_BUDGET
#: leaves for the rest of a run.
MAX_DEPLOYMENT_POLLS = 120
#: Scoring steps (Lambda invocations) of one evaluation, both phases together, before it gives up.
#: A step scores until its Lambda has STEP_RESERVE_SECONDS left (a sample of 100 prompts usually takes
#: one step), so 100 steps is about a day of Converse calls: only a Bedrock far slower than usual
#: reaches it, and the history stays bounded whatever the latency.
MAX_SCORING_STEPS = 100
#: What a scoring step keeps in hand before its Lambda's timeout, in seconds, to save its progress:
#: at least this, and at least twice its slowest Converse call so far.
STEP_RESERVE_SECONDS = 60
#: The longest wait between two looks at the temporary deployment (the waits start at a minute and
#: double, as for a line's endpoint): 120 looks cover about ten hours.
DEPLOYMENT_POLL_CAP_SECONDS = 300
#: Most tokens of one judgement (a few sentences of reasoning and the score).
JUDGE_MAX_TOKENS = 400


class EvaluationFailed(BedrockPermanentError):
    """The evaluation could not run (the judge is the candidate)."""


class EndpointFailed(EvaluationFailed):
    """The candidate's temporary deployment failed, or was not ready in time (the same error a line's
    endpoint that fails gives the run)."""


# ---- prompts ----


def sample(prompts: Sequence[EvaluationPrompt], size: int, seed: str) -> list[EvaluationPrompt]:
    """A deterministic sample of ``size`` prompts (all of them when there are fewer), in file order."""
    if len(prompts) <= size:
        return list(prompts)
    chosen = sorted(random.Random(seed).sample(range(len(prompts)), size))  # noqa: S311 - a sample, not a secret
    return [prompts[i] for i in chosen]


def _read_text(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def load_prompts(
    s3: Any, run: RunRef, config: EvaluationConfig
) -> tuple[list[EvaluationPrompt], str, str | None]:
    """The run's evaluation prompts, where they came from, and why there are none (else None)."""
    location = run.location
    text = _read_text(s3, run.bucket, location.key(EVALUATION_FILE))
    if text is not None:
        source = f"s3://{run.bucket}/{location.key(EVALUATION_FILE)}"
        try:
            prompts = parse_prompts(text.splitlines())[:MAX_RECORDS]
        except ValueError as exc:
            return [], source, f"{EVALUATION_FILE} cannot be read as prompts: {exc}"
    else:
        text = _read_text(s3, run.bucket, location.validation_key)
        if text is None:
            return [], "none", f"the run has neither {EVALUATION_FILE} nor validation.jsonl to score on"
        try:
            every = parse_prompts(text.splitlines())
        except ValueError as exc:
            return [], f"s3://{run.bucket}/{location.validation_key}", f"validation.jsonl: {exc}"
        prompts = sample(every, config.sample_size, seed=run.run)
        source = (
            f"s3://{run.bucket}/{location.validation_key} "
            f"({len(prompts)} of {len(every)} records, seeded sample)"
        )
    prompts = [p for p in prompts if p.reference is not None or config.judge_model_id]
    if not prompts:
        return [], source, "no prompt has a reference answer to score against (and no judge is configured)"
    return prompts, source, None


# ---- metrics ----


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, underscore)."""
    return _WORD.findall(text.lower())


def exact_match(answer: str, reference: str) -> float:
    """1.0 when the answer equals the reference, ignoring case and surrounding or repeated spaces."""
    return float(" ".join(answer.lower().split()) == " ".join(reference.lower().split()))


def token_f1(answer: str, reference: str) -> float:
    """The harmonic mean of word precision and recall (SQuAD-style, multiset overlap)."""
    got, want = words(answer), words(reference)
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common word subsequence over both lengths."""
    got, want = words(answer), words(reference)
    if not got or not want:
        return float(got == want)
    lcs = _lcs(got, want)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(got), lcs / len(want)
    return 2 * precision * recall / (precision + recall)


def format_ok(answer: str, fmt: str) -> float | None:
    """1.0 when the answer has the declared format (``json``: it parses as JSON); None without one."""
    if fmt != "json":
        return None
    try:
        json.loads(answer)
    except ValueError:
        return 0.0
    return 1.0


def score_answer(answer: str, reference: str | None, fmt: str) -> dict[str, float | None]:
    """Every deterministic metric of one answer (None where there is no reference or format)."""
    if reference is None:
        return {"exact_match": None, "token_f1": None, "rouge_l": None, "format": format_ok(answer, fmt)}
    return {
        "exact_match": exact_match(answer, reference),
        "token_f1": token_f1(answer, reference),
        "rouge_l": rouge_l(answer, reference),
        "format": format_ok(answer, fmt),
    }


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: str = "evaluation"
) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of ``values`` (seeded: the same values, the same
    interval)."""
    if not values:
        raise ValueError("no values to bootstrap")
    rng = random.Random(seed)  # noqa: S311 - reproducible resampling, not a secret
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[min(resamples - 1, int(tail * resamples))]
    high = means[min(resamples - 1, int((1 - tail) * resamples))]
    return low, high


def aggregate(results: Sequence[Mapping[str, Any]], role: str, config: EvaluationConfig) -> dict[str, Any]:
    """Mean and bootstrap interval of every metric of ``role``'s answers (metrics with no value left out)."""
    out: dict[str, Any] = {}
    for metric in ("exact_match", "token_f1", "rouge_l", "format", "judge"):
        values = [
            float(v)
            for r in results
            if (v := ((r.get("answers") or {}).get(role) or {}).get("scores", {}).get(metric)) is not None
        ]
        if not values:
            continue
        low, high = bootstrap_ci(values, resamples=config.bootstrap_resamples, seed=f"{role}:{metric}")
        out[metric] = {
            "mean": round(statistics.fmean(values), 4),
            "ci95": [round(low, 4), round(high, 4)],
            "n": len(values),
        }
    return out


@dataclass(frozen=True)
class Decision:
    """What the gate decided, and why, in the words of the notice."""

    passed: bool
    why: str
    summary: str


def decide(
    candidate: Mapping[str, Any], current: Mapping[str, Any], config: EvaluationConfig, prompts: int
) -> Decision:
    """The gate: the candidate fails when it scores below the current model by more than the margin,
    or below the floor. ``candidate`` / ``current``: :func:`aggregate` results."""
    metric = config.metric
    cand, curr = candidate.get(metric), current.get(metric)
    if cand is None:
        return Decision(False, f"the candidate has no {metric} score", f"no {metric} score: kept")

    def shown(agg: Mapping[str, Any]) -> str:
        return f"{agg['mean']:.2f} [{agg['ci95'][0]:.2f}, {agg['ci95'][1]:.2f}]"

    reasons = []
    if curr is not None and cand["mean"] < curr["mean"] - config.gate_margin:
        reasons.append(
            f"{metric} {cand['mean']:.4f} is below the current model's {curr['mean']:.4f} by more than the "
            f"margin {config.gate_margin}"
        )
    if config.gate_floor is not None and cand["mean"] < config.gate_floor:
        reasons.append(f"{metric} {cand['mean']:.4f} is below the floor {config.gate_floor}")
    passed = not reasons
    versus = f" vs current {shown(curr)}" if curr is not None else ""
    summary = (
        f"{metric}: candidate {shown(cand)}{versus} on {prompts} prompts: {PROMOTED if passed else KEPT}"
    )
    why = "; ".join(reasons) if reasons else "not worse than the current model (evaluation gate passed)"
    return Decision(passed, f"evaluation gate: {why}" if reasons else why, summary)


# ---- the judge ----


def judge_prompt(rubric: str, prompt: EvaluationPrompt, answer: str) -> str:
    """The judge's user turn: the rubric, the prompt, the reference and the answer."""
    return (
        f"{rubric}\n\n<prompt>\n{prompt.text}\n</prompt>\n\n"
        f"<reference>\n{prompt.reference or '(none given)'}\n"
        f"</reference>\n\n<answer>\n{answer}\n</answer>"
    )


def parse_judgement(text: str) -> tuple[float | None, str]:
    """The judge's 1-5 score rescaled to 0-1 (None when it gave none), and its reasoning."""
    found = _SCORE.findall(text)
    reasoning = text.split("Score", 1)[0].replace("Reasoning:", "").strip() or text.strip()
    if not found:
        return None, reasoning
    return (int(found[-1]) - 1) / 4, reasoning


# ---- calling models ----


@dataclass
class Usage:
    """Tokens a model used, from Converse's ``usage``."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, usage: Mapping[str, Any]) -> None:
        self.calls += 1
        self.input_tokens += int(usage.get("inputTokens") or 0)
        self.output_tokens += int(usage.get("outputTokens") or 0)


def converse(
    runtime: Any, model_id: str, prompt: EvaluationPrompt, max_tokens: int
) -> tuple[str, dict[str, Any]]:
    """One deterministic Converse call (temperature 0): the answer's text and the usage."""
    params: dict[str, Any] = {
        "modelId": model_id,
        "messages": list(prompt.messages),
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0},
    }
    if prompt.system:
        params["system"] = [{"text": prompt.system}]
    response = _call("Converse", runtime.converse, **params)
    text = text_of(((response.get("output") or {}).get("message") or {}).get("content"))
    return text, dict(response.get("usage") or {})


def on_demand_model_id(base_model_id: str) -> str:
    """The id a base model is invoked on demand with (its customization variant suffix dropped:
    ``amazon.nova-lite-v1:0:300k`` is invoked as ``amazon.nova-lite-v1:0``)."""
    return _BASE_VARIANT.sub("", base_model_id)


# ---- cost ----


def estimate_cost(
    prompts: Sequence[EvaluationPrompt],
    targets: Mapping[str, Mapping[str, Any]],
    settings: EvaluationSettings,
) -> dict[str, Any]:
    """Tokens and price of the evaluation before it runs: input from the prompts' length, output at
    most ``max_tokens`` per answer; per target priced from the table (on-demand rates), or said to
    be billed by the hour (a provisioned endpoint) or not published."""
    config = settings.evaluation
    chars = sum(len(p.system) + sum(len(text_of(m["content"])) for m in p.messages) for p in prompts)
    input_tokens = max(1, round(chars / settings.chars_per_token))
    output_tokens = len(prompts) * config.max_tokens
    out: dict[str, Any] = {}
    for role, target in targets.items():
        out[role] = _priced(target, input_tokens, output_tokens, settings)
    if config.judge_model_id:
        rubric_tokens = round(len(_rubric()) / settings.chars_per_token)
        judge_in = input_tokens + output_tokens + len(prompts) * rubric_tokens
        judge = {"pricedAs": config.judge_model_id, "billing": "on_demand"}
        out["judge"] = _priced(
            judge, judge_in * len(targets), JUDGE_MAX_TOKENS * len(prompts) * len(targets), settings
        )
    return out


def _priced(
    target: Mapping[str, Any], input_tokens: int, output_tokens: int, settings: EvaluationSettings
) -> dict[str, Any]:
    base = {"inputTokens": input_tokens, "outputTokensAtMost": output_tokens}
    if target.get("billing") == "provisioned":
        return {**base, "text": "billed by the hour as the line's Provisioned Throughput: no per-token cost"}
    estimate = pricing.on_demand_estimate(
        pricing.prices_for(str(target["pricedAs"]), settings.prices), input_tokens, output_tokens
    )
    return {**base, **estimate.to_dict()}


def actual_cost(
    usage: Mapping[str, Usage], targets: Mapping[str, Mapping[str, Any]], settings: EvaluationSettings
) -> dict[str, Any]:
    """What the evaluation used, from Converse's token counts, priced as :func:`estimate_cost` is."""
    out = {}
    for role, used in usage.items():
        target = targets.get(role) or {"pricedAs": settings.evaluation.judge_model_id, "billing": "on_demand"}
        priced = _priced(target, used.input_tokens, used.output_tokens, settings)
        priced.pop("outputTokensAtMost", None)
        out[role] = {**priced, "calls": used.calls, "outputTokens": used.output_tokens}
    return out


def _rubric() -> str:
    return RUBRIC.read_text(encoding="utf-8")


# ---- the EvaluateCandidate task ----


@dataclass
class _Progress:
    """The evaluation document, kept in ``reports/<run>/evaluation.json`` between invocations."""

    doc: dict[str, Any]
    usage: dict[str, Usage] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> _Progress:
        usage = {k: Usage(**v) for k, v in (doc.get("usage") or {}).items()}
        return cls(doc, usage)

    def save(self, s3: Any, bucket: str, key: str) -> str:
        self.doc["usage"] = {k: vars(v) for k, v in self.usage.items()}
        return write_json(s3, bucket, key, self.doc)


def _report_key(run: RunRef) -> str:
    return f"reports/{run.run}/evaluation.json"


def _read_doc(s3: Any, run: RunRef) -> dict[str, Any] | None:
    text = _read_text(s3, run.bucket, _report_key(run))
    return dict(json.loads(text)) if text else None


def _targets(plan: Mapping[str, Any], settings: EvaluationSettings) -> dict[str, dict[str, Any]]:
    """Who is scored: the current model (the line's endpoint, or the base model for a first version)
    and the candidate (its temporary deployment, or the line's endpoint after the swap)."""
    base = on_demand_model_id(settings.base_model_id)
    mode = str(plan["mode"])
    billing = "provisioned" if mode == "provisioned" else "on_demand"
    if plan.get("action") == "update" and plan.get("endpointArn"):
        current = {
            "modelId": plan["endpointArn"],
            "modelArn": plan.get("previousModelArn"),
            "label": "the line's current model",
            "pricedAs": settings.base_model_id,
            "billing": billing,
        }
    else:
        current = {
            "modelId": base,
            "modelArn": None,
            "label": f"the base model {base}",
            "pricedAs": settings.base_model_id,
            "billing": "on_demand",
        }
    candidate = {
        "modelId": None,
        "modelArn": plan["modelArn"],
        "label": "the candidate",
        "pricedAs": settings.base_model_id,
        "billing": billing,
    }
    return {CURRENT: current, CANDIDATE: candidate}


def _phase_roles(phase: str) -> tuple[str, ...]:
    return {"current": (CURRENT,), "candidate": (CANDIDATE,), "both": (CURRENT, CANDIDATE)}[phase]


def _start(
    s3: Any, run: RunRef, task: Mapping[str, Any], settings: EvaluationSettings, now: datetime
) -> _Progress:
    plan = task["serving"]
    config = settings.evaluation
    prompts, source, why = load_prompts(s3, run, config)
    targets = _targets(plan, settings)
    doc: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "run": run.run,
        "line": run.run,
        "executionArn": task["executionArn"],
        "startedAt": now.isoformat(),
        "status": "in progress",
        "source": source,
        "metric": config.metric,
        "format": config.format,
        "judgeModelId": config.judge_model_id,
        "gate": {"margin": config.gate_margin, "floor": config.gate_floor},
        "targets": targets,
        "promptCount": len(prompts),
        "results": [
            {
                "id": p.id,
                "category": p.category,
                "system": p.system,
                "messages": list(p.messages),
                "prompt": p.text,
                "reference": p.reference,
                "answers": {},
            }
            for p in prompts
        ],
    }
    if why is not None:
        doc.update(status="not evaluated", why=why)
    elif plan.get("action") == "none":
        doc.update(status="not evaluated", why="the line already serves this model")
    else:
        doc["costEstimate"] = estimate_cost(prompts, targets, settings)
    return _Progress(doc)


def _prompt_of(result: Mapping[str, Any]) -> EvaluationPrompt:
    return EvaluationPrompt(
        id=str(result["id"]),
        system=str(result.get("system") or ""),
        messages=tuple(result["messages"]),
        reference=result.get("reference"),
        category=result.get("category"),
    )


class _StepClock:
    """When a scoring step must stop: out of calls (``calls_per_invocation``), or out of time (the
    Lambda's remaining time below the reserve). A step always makes at least one call."""

    def __init__(self, calls: int, time_left: Callable[[], float] | None) -> None:
        self.calls, self.time_left = calls, time_left
        self.made, self.slowest = 0, 0.0

    def must_stop(self) -> bool:
        if self.made >= self.calls:
            return True
        if self.time_left is None or self.made == 0:
            return False
        return self.time_left() < max(STEP_RESERVE_SECONDS, 2 * self.slowest)

    def timed(self, call: Callable[[], tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
        started = time.monotonic()
        answer = call()
        self.made += 1
        self.slowest = max(self.slowest, time.monotonic() - started)
        return answer


def _score_batch(
    runtime: Any,
    progress: _Progress,
    roles: Sequence[str],
    settings: EvaluationSettings,
    time_left: Callable[[], float] | None,
) -> bool:
    """Score the answers not scored yet while the step has calls and time left (``time_left``: the
    Lambda's remaining seconds; None: no time bound); True when every one of ``roles`` is scored."""
    config = settings.evaluation
    rubric = _rubric() if config.judge_model_id else ""
    clock = _StepClock(config.calls_per_invocation, time_left)
    targets = progress.doc["targets"]
    for result in progress.doc["results"]:
        for role in roles:
            if role in result["answers"]:
                continue
            if clock.must_stop():
                return False
            prompt = _prompt_of(result)
            model_id = str(targets[role]["modelId"])
            text, usage = clock.timed(partial(converse, runtime, model_id, prompt, config.max_tokens))
            progress.usage.setdefault(role, Usage()).add(usage)
            scores: dict[str, Any] = score_answer(text, prompt.reference, config.format)
            answer: dict[str, Any] = {"text": text, "scores": scores, "usage": usage}
            if config.judge_model_id:
                question = _judged(prompt, rubric, text)
                verdict, judged = clock.timed(
                    partial(converse, runtime, config.judge_model_id, question, JUDGE_MAX_TOKENS)
                )
                progress.usage.setdefault("judge", Usage()).add(judged)
                scores["judge"], answer["judgeReasoning"] = parse_judgement(verdict)
            result["answers"][role] = answer
    return True


def _judged(prompt: EvaluationPrompt, rubric: str, answer: str) -> EvaluationPrompt:
    return EvaluationPrompt(
        id=prompt.id,
        system="",
        messages=({"role": "user", "content": [{"text": judge_prompt(rubric, prompt, answer)}]},),
        reference=None,
    )


def worst_prompts(doc: Mapping[str, Any], count: int = 5) -> list[dict[str, Any]]:
    """The prompts where the candidate did worst (by the gate's metric), with both answers."""
    metric = str(doc.get("metric") or "token_f1")
    scored = [
        r
        for r in doc.get("results") or []
        if ((r.get("answers") or {}).get(CANDIDATE) or {}).get("scores", {}).get(metric) is not None
    ]
    scored.sort(key=lambda r: (r["answers"][CANDIDATE]["scores"][metric], r["id"]))
    return [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "reference": r.get("reference"),
            "candidate": r["answers"][CANDIDATE]["text"],
            "candidateScore": r["answers"][CANDIDATE]["scores"][metric],
            "current": ((r["answers"].get(CURRENT) or {}).get("text")),
            "currentScore": ((r["answers"].get(CURRENT) or {}).get("scores") or {}).get(metric),
        }
        for r in scored[:count]
    ]


def _finish(progress: _Progress, settings: EvaluationSettings, now: datetime) -> Decision:
    doc = progress.doc
    config = settings.evaluation
    results = doc["results"]
    doc["aggregates"] = {role: aggregate(results, role, config) for role in (CANDIDATE, CURRENT)}
    decision = decide(doc["aggregates"][CANDIDATE], doc["aggregates"][CURRENT], config, len(results))
    doc["decision"] = {
        "passed": decision.passed,
        "outcome": PROMOTED if decision.passed else KEPT,
        "why": decision.why,
        "summary": decision.summary,
    }
    doc["cost"] = actual_cost(progress.usage, doc["targets"], settings)
    doc["worst"] = worst_prompts(doc)
    doc["status"] = "done"
    doc["finishedAt"] = now.isoformat()
    return decision


def _next_wait(doc: Mapping[str, Any]) -> int:
    """The "Wait for candidate deployment" state's seconds: the quota's back-off while Bedrock refuses
    the deployment for a quota, else the deployment's own (1, 2, 4... minutes)."""
    if doc.get("quotaWait"):
        return int(doc["quotaWait"]["waitSeconds"])
    return endpoint_wait.wait_seconds(int(doc.get("deploymentPolls") or 0) - 1, DEPLOYMENT_POLL_CAP_SECONDS)


def _result(progress: _Progress, uri: str, *, done: bool, waiting: bool = False) -> dict[str, Any]:
    doc = progress.doc
    decision = doc.get("decision") or {}
    evaluated = doc["status"] != "not evaluated"
    return {
        "done": done,
        "waiting": waiting,
        # the "Wait for candidate deployment" state's SecondsPath
        "waitSeconds": _next_wait(doc) if waiting else 0,
        "evaluated": evaluated,
        "passed": bool(decision.get("passed", True)) if done else None,
        "outcome": decision.get("outcome") or ("not evaluated" if not evaluated else None),
        "why": decision.get("why") or doc.get("why"),
        "summary": decision.get("summary") or (f"not evaluated: {doc.get('why')}" if not evaluated else None),
        "scored": sum(len(r["answers"]) for r in doc["results"]),
        "prompts": doc["promptCount"],
        "reportUri": uri,
    }


def _ensure_deployment(
    bedrock: Any, run: RunRef, progress: _Progress, execution_arn: str, settings: EvaluationSettings
) -> bool:
    """Create the candidate's temporary deployment (once); True when it is Active."""
    name = evaluation_deployment_name(run.line, run.identity)
    found = _find_deployment(bedrock, name)
    if found is None:
        tags = run_tags(run, execution_arn, settings)
        try:
            arn = str(
                bedrock.create_custom_model_deployment(
                    modelDeploymentName=name,
                    modelArn=str(progress.doc["targets"][CANDIDATE]["modelArn"]),
                    description=f"Temporary: scores a candidate of line {run.run}; deleted after",
                    clientRequestToken=f"ev-{hashlib.sha256(name.encode()).hexdigest()[:40]}",
                    tags=to_bedrock_tags(tags),
                )["customModelDeploymentArn"]
            )
        except (ClientError, BotoCoreError) as exc:
            error = classify(exc, "CreateCustomModelDeployment")
            if not isinstance(error, BedrockQuotaExceeded):
                raise error from exc
            progress.doc["quotaWait"] = _quota_wait(progress, name, str(error), settings)
            return False
        progress.doc.pop("quotaWait", None)
        progress.doc["targets"][CANDIDATE].update(modelId=arn, deploymentName=name)
        return False
    progress.doc["targets"][CANDIDATE].update(modelId=found["customModelDeploymentArn"], deploymentName=name)
    status = str(found.get("status", ""))
    polls = int(progress.doc.get("deploymentPolls") or 0) + 1
    progress.doc["deploymentPolls"] = polls
    if status != "Active" and polls > MAX_DEPLOYMENT_POLLS:
        raise EndpointFailed(
            f"the candidate's evaluation deployment {name} was still {status} after {MAX_DEPLOYMENT_POLLS} "
            "checks; the run stops (the clean-up deletes it)"
        )
    if status == "Failed":
        raise EndpointFailed(
            f"the candidate's evaluation deployment {name} failed: {found.get('failureMessage', '')}"
        )
    return status == "Active"


def _quota_wait(progress: _Progress, name: str, said: str, settings: EvaluationSettings) -> dict[str, Any]:
    """Bedrock refused the temporary deployment for a quota: the next wait under the line's
    ``deployment_quota_policy`` (2, 4, 8 minutes..., as Serve model waits), or the typed error that
    fails the run (``fail``; or ``max_deployment_wait_hours`` spent: QuotaWaitExpired)."""
    what = f"The candidate's temporary evaluation deployment ({name})"
    try:
        return wait_or_fail(
            settings.as_policy(), previous=progress.doc.get("quotaWait"), error=said, what=what
        )
    except QuotaWaitExpired as exc:
        raise QuotaWaitExpired(
            f"{exc} (max_deployment_wait_hours). Nothing was served; the custom model is kept: "
            f"{progress.doc['targets'][CANDIDATE].get('modelArn')}. Ask for a higher quota of custom model "
            "deployments (Service Quotas, Amazon Bedrock), delete a deployment you no longer use, or raise "
            "max_deployment_wait_hours; then upload train.jsonl again."
        ) from exc


def _announce_quota_wait(
    sns: Any, run: RunRef, doc: Mapping[str, Any], execution_arn: str, settings: EvaluationSettings
) -> None:
    """Tell the run's people, once, that the evaluation waits for a deployment quota."""
    name = evaluation_deployment_name(run.line, run.identity)
    notice = deployment_quota_notice(
        run,
        deployment=f"the temporary deployment that scores the candidate ({name})",
        model_arn=doc["targets"][CANDIDATE].get("modelArn"),
        said=str(doc["quotaWait"]["error"]),
        state="Wait for candidate deployment",
        max_wait_seconds=settings.max_wait_seconds,
        execution_arn=execution_arn,
    )
    publish(sns, settings.topic_arn, notice, "waiting", run.run)


def _find_deployment(bedrock: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ResourceNotFoundException", "ValidationException"):
            return None
        raise classify(exc, "GetCustomModelDeployment") from exc


def _delete_deployment(bedrock: Any, progress: _Progress) -> None:
    arn = progress.doc["targets"][CANDIDATE].get("modelId")
    if arn:
        _call(
            "DeleteCustomModelDeployment",
            bedrock.delete_custom_model_deployment,
            customModelDeploymentIdentifier=arn,
        )
        progress.doc["targets"][CANDIDATE]["deletedAt"] = datetime.now(UTC).isoformat()


def _swap_back(bedrock: Any, plan: Mapping[str, Any], endpoint: Mapping[str, Any]) -> str:
    """A provisioned line's candidate failed: put the previous model back (one update), or, for a
    first version, delete the throughput it was just bought for (a committed one cannot be)."""
    arn = str(endpoint["endpointArn"])
    previous = endpoint.get("previousModelArn") or plan.get("previousModelArn")
    if previous:
        _call(
            "UpdateProvisionedModelThroughput",
            bedrock.update_provisioned_model_throughput,
            provisionedModelId=arn,
            desiredModelId=previous,
        )
        return f"swapped back: {arn} serves {previous} again"
    described = _call(
        "GetProvisionedModelThroughput", bedrock.get_provisioned_model_throughput, provisionedModelId=arn
    )
    if described.get("commitmentDuration"):
        return f"{arn} has a commitment and cannot be deleted: it keeps serving the candidate"
    _call(
        "DeleteProvisionedModelThroughput",
        bedrock.delete_provisioned_model_throughput,
        provisionedModelId=arn,
    )
    return f"deleted {arn}, bought for this first version (the line has no endpoint again)"


def evaluate_candidate(
    bedrock: Any,
    runtime: Any,
    s3: Any,
    run: RunRef,
    *,
    task: Mapping[str, Any],
    settings: EvaluationSettings,
    time_left: Callable[[], float] | None = None,
    sns: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Evaluate current model / Evaluate candidate tasks: one step of the evaluation, scoring while
    the Lambda has time left (``time_left``: its remaining seconds).

    ``task``: ``phase`` (``both``: on-demand, candidate on its temporary deployment; ``current``:
    provisioned, before the swap; ``candidate``: provisioned, after it), ``serving`` (the plan),
    ``endpoint`` (provisioned candidate: the Serve model result), ``executionArn``.
    Returns ``done`` (else the state machine calls again; ``waiting``: after a wait), ``passed``,
    ``outcome``, ``why``, ``summary``, ``scored``, ``prompts`` and ``reportUri``.
    """
    at = now or datetime.now(UTC)
    phase = str(task["phase"])
    plan = task["serving"]
    execution_arn = str(task["executionArn"])
    key = _report_key(run)
    existing = _read_doc(s3, run)
    uri = f"s3://{run.bucket}/{key}"
    mine = existing is not None and existing.get("executionArn") == execution_arn
    if mine and existing and existing.get("status") == "done":
        # A retry after the decision (and its swap back) was made and saved: nothing to do again.
        return _result(_Progress.of(existing), uri, done=True)
    progress = _Progress.of(existing) if mine and existing else _start(s3, run, task, settings, at)
    if progress.doc["status"] == "not evaluated":
        progress.save(s3, run.bucket, key)
        return _result(progress, uri, done=True)
    judge = settings.evaluation.judge_model_id
    if phase == "both" and not _ensure_deployment(bedrock, run, progress, execution_arn, settings):
        progress.save(s3, run.bucket, key)
        wait = progress.doc.get("quotaWait")
        if wait and wait["firstWait"] and sns is not None:
            _announce_quota_wait(sns, run, progress.doc, execution_arn, settings)
        return _result(progress, uri, done=False, waiting=True)
    if phase == "candidate":
        progress.doc["targets"][CANDIDATE]["modelId"] = task["endpoint"]["endpointArn"]
    if judge and judge in {progress.doc["targets"][CANDIDATE].get("modelId"), plan["modelArn"]}:
        raise EvaluationFailed(
            f"evaluation_judge_model_id {judge} is the candidate; a model never judges itself"
        )
    steps = int(progress.doc.get("scoringSteps") or 0) + 1
    progress.doc["scoringSteps"] = steps
    complete = _score_batch(runtime, progress, _phase_roles(phase), settings, time_left)
    if not complete and steps >= MAX_SCORING_STEPS:
        raise EvaluationFailed(
            f"scoring took {steps} steps of the evaluation's Lambda and is not done "
            f"({sum(len(r['answers']) for r in progress.doc['results'])} answers scored): Bedrock answered "
            "far slower than usual. The model is kept; run again, or lower evaluation_sample_size or "
            "evaluation_max_tokens."
        )
    if not complete or phase == "current":
        progress.save(s3, run.bucket, key)
        return _result(progress, uri, done=complete)
    decision = _finish(progress, settings, at)
    if phase == "both":
        _delete_deployment(bedrock, progress)
    elif not decision.passed:
        progress.doc["decision"]["swapBack"] = _swap_back(bedrock, plan, task["endpoint"])
    progress.save(s3, run.bucket, key)
    return _result(progress, uri, done=True)


def reported(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What ``finetune report`` shows of ``evaluation.json``: aggregates, decision, cost, worst prompts."""
    return {
        "status": doc.get("status"),
        "why": doc.get("why"),
        "source": doc.get("source"),
        "metric": doc.get("metric"),
        "prompts": doc.get("promptCount"),
        "targets": {k: v.get("label") for k, v in (doc.get("targets") or {}).items()},
        "aggregates": doc.get("aggregates"),
        "decision": doc.get("decision"),
        "costEstimate": doc.get("costEstimate"),
        "cost": doc.get("cost"),
        "worst": doc.get("worst") or worst_prompts(doc),
    }


__all__ = [
    "EvaluationConfig",
    "EvaluationFailed",
    "EvaluationPrompt",
    "aggregate",
    "bootstrap_ci",
    "decide",
    "evaluate_candidate",
    "exact_match",
    "format_ok",
    "load_prompts",
    "parse_judgement",
    "parse_prompts",
    "rouge_l",
    "token_f1",
]
