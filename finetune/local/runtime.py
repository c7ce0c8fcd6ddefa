"""Emulated Bedrock runtime: Converse on a line's endpoint, with a synthetic, labelled answer.

moto 5.2.5 routes ``bedrock-runtime`` requests to ``BedrockRuntimeResponse`` but has no Converse;
this module adds it, as :mod:`finetune.local.bedrock` adds the control plane. The model id must be
an endpoint the emulated Bedrock holds: a provisioned throughput (``provisioned-model/...``) that is
``InService``, or a custom model deployment (``custom-model-deployment/...``) that is ``Active``.
No model runs: the answer is derived from the request alone (same request, same answer), says that
it is synthetic, and counts tokens as about four characters each. Errors follow the botocore
model: ``ValidationException`` (400) for an identifier that is no endpoint, ``ResourceNotFoundException``
(404) for an endpoint ARN the account does not hold, ``ModelNotReadyException`` (429) for an endpoint
that is not in service yet.

Reading an endpoint's status here never moves it on (only a control-plane describe does).

Evaluation prompts (those :func:`register_references` was given, from the run folder) are answered
by the scenario's quality instead (labelled synthetic too): the candidate (the endpoint serving the
newest custom model) and the current model (an older one, or a base model, which Converse also takes
by its id here) answer the reference, a degraded copy of it, or the same neutral text, so that
``better-candidate`` promotes, ``worse-candidate`` keeps, and every other scenario scores a tie.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import unquote

from moto.bedrockruntime.responses import BedrockRuntimeResponse

from finetune.local import bedrock as emulated_bedrock
from finetune.local.bedrock import BedrockError, EmulatedJob, state_for

#: The answer's first words: nobody should mistake it for a model's.
LABEL = "[synthetic answer from the local emulation; no model ran]"
CHARS_PER_TOKEN = 4
_ENDPOINT_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:bedrock:[a-z0-9-]+:\d{12}:(provisioned-model|custom-model-deployment)/[a-z0-9]+$"
)
_FOUNDATION_MODEL = re.compile(r"^[a-z0-9-]+\.[a-z0-9.-]+(:\d+)?$")
#: Evaluation prompts (last user turn) -> reference answer, for the scenario's quality.
_REFERENCES: dict[str, str] = {}


def register_references(references: dict[str, str]) -> None:
    """The run folder's evaluation prompts and their references (replacing those of a run before)."""
    _REFERENCES.clear()
    _REFERENCES.update(references)


def degraded(reference: str) -> str:
    """A deterministic worse answer: every other word of the reference, no longer valid JSON."""
    kept = reference.split()[::2]
    return "Answer: " + " ".join(kept)


#: What each model answers an evaluation prompt with, by the scenario's ``candidate_quality``.
_QUALITY = {
    "better": {"candidate": "reference", "current": "degraded"},
    "worse": {"candidate": "degraded", "current": "reference"},
}


def evaluation_answer(reference: str, prompt: str, role: str, quality: str | None) -> str:
    """The emulation's answer to an evaluation prompt for the ``candidate`` or ``current`` model."""
    kind = (_QUALITY.get(quality or "") or {}).get(role, "neutral")
    if kind == "reference":
        return reference
    if kind == "degraded":
        return degraded(reference)
    quoted = prompt if len(prompt) <= 80 else prompt[:77] + "..."
    return f'{LABEL} received "{quoted}".'


def _served_model(state: Any, model_id: str) -> EmulatedJob | None:
    """The custom model behind an endpoint ARN (None for a base model)."""
    for holding in (state.throughputs, state.deployments):
        if model_id in holding:
            return holding[model_id].model
    return None


def _role(resp: BedrockRuntimeResponse, model_id: str) -> str:
    """``candidate`` when the model serves the newest custom model, else ``current``."""
    state = state_for(resp.current_account, resp.region)
    served = _served_model(state, model_id)
    newest = max(state.custom_models.values(), key=lambda m: m.creation_time, default=None)
    return "candidate" if served is not None and served is newest else "current"


#: Status in which each kind of endpoint serves.
_SERVING = {"provisioned-model": "InService", "custom-model-deployment": "Active"}


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0


def _texts(blocks: Any) -> list[str]:
    return [str(b["text"]) for b in blocks or [] if isinstance(b, dict) and "text" in b]


def synthetic_reply(
    model_id: str, system: str, messages: list[dict[str, Any]], max_tokens: int
) -> dict[str, Any]:
    """The Converse response body for ``messages`` on ``model_id`` (deterministic)."""
    prompt_text = "\n".join(t for m in messages for t in _texts(m.get("content")))
    last_user = next(
        (" ".join(_texts(m.get("content"))) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    digest = hashlib.sha256(json.dumps([model_id, system, messages], sort_keys=True).encode()).hexdigest()[
        :12
    ]
    quoted = last_user if len(last_user) <= 80 else last_user[:77] + "..."
    answer = f'{LABEL} Endpoint {model_id.rsplit("/", 1)[-1]} received "{quoted}" (request {digest}).'
    stop = "end_turn"
    if _tokens(answer) > max_tokens:
        answer = answer[: max_tokens * CHARS_PER_TOKEN]
        stop = "max_tokens"
    inputs = _tokens(system) + _tokens(prompt_text)
    outputs = _tokens(answer)
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
        "stopReason": stop,
        "usage": {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs},
        "metrics": {"latencyMs": 0},
    }


def _endpoint_status(resp: BedrockRuntimeResponse, model_id: str) -> str:
    """The endpoint's reported status; raises the error Bedrock would for anything else."""
    match = _ENDPOINT_ARN.match(model_id)
    if not match:
        raise BedrockError(
            "ValidationException",
            f"The provided model identifier is invalid: {model_id} is not a provisioned model or custom "
            "model deployment ARN (the emulation serves only those).",
        )
    state = state_for(resp.current_account, resp.region)
    # Whatever the emulated control plane holds under this ARN (throughputs; deployments when emulated).
    for name, holding in vars(state).items():
        if name.startswith("deleted") or not isinstance(holding, dict) or model_id not in holding:
            continue
        status = getattr(holding[model_id], "reported_status", None)
        if isinstance(status, str):
            return status
    raise BedrockError("ResourceNotFoundException", f"The model {model_id} could not be found.", 404)


def converse(self: BedrockRuntimeResponse) -> Any:
    """Converse (``POST /model/{modelId}/converse``)."""
    path = self.path.split("?", 1)[0]
    model_id = unquote(unquote(path.removeprefix("/model/").removesuffix("/converse")))
    if not _FOUNDATION_MODEL.match(model_id):
        status = _endpoint_status(self, model_id)
        kind = model_id.split(":")[5].split("/")[0]
        if status != _SERVING[kind]:
            raise BedrockError(
                "ModelNotReadyException",
                f"The model {model_id} is {status}, not ready to serve requests.",
                429,
            )
    body = json.loads(self.body or "{}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BedrockError("ValidationException", "messages: at least one message is required.")
    system = "\n".join(_texts(body.get("system")))
    max_tokens = int((body.get("inferenceConfig") or {}).get("maxTokens") or 4096)
    reply = synthetic_reply(model_id, system, messages, max_tokens)
    last_user = next(
        (" ".join(_texts(m.get("content"))) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    if last_user in _REFERENCES:
        quality = emulated_bedrock.current_scenario().candidate_quality
        answer = evaluation_answer(_REFERENCES[last_user], last_user, _role(self, model_id), quality)
        reply["output"]["message"]["content"] = [{"text": answer}]
        reply["usage"]["outputTokens"] = _tokens(answer)
        reply["usage"]["totalTokens"] = reply["usage"]["inputTokens"] + reply["usage"]["outputTokens"]
    return 200, {"content-type": "application/json"}, json.dumps(reply)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Answer Converse while the context is open."""
    with mock.patch.object(BedrockRuntimeResponse, "converse", converse, create=True):
        yield
