"""The model catalog: the single source of truth for per-model dataset limits and hyperparameters.

The validator Lambda, the ``finetune`` CLI, the start-job Lambda and the synth-time configuration
check all read this module. Facts come from the Bedrock user guide (see
``shared/reference/bedrock-facts.md`` §4). A platform team can add a model that becomes
fine-tunable later through the ``models`` configuration key, in the same shape as
:func:`ModelSpec.to_dict`, without a code change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

HyperparameterKind = Literal["int", "float"]

CLAUDE_3_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"

#: Conservative default for the token estimate: fewer characters per token means more tokens,
#: so a record is more likely to be flagged than to slip through. AWS plans with about 6.
DEFAULT_CHARS_PER_TOKEN = 3.0

GB = 1024**3


class CatalogError(ValueError):
    """A model is unknown, or a configured model specification is malformed."""


@dataclass(frozen=True)
class HyperparameterSpec:
    """One hyperparameter a model accepts, with its inclusive range and Bedrock default."""

    name: str
    kind: HyperparameterKind
    minimum: float
    maximum: float
    default: float
    description: str = ""
    early_stopping: bool = False

    def describe_range(self) -> str:
        """Human-readable range, e.g. ``an integer from 1 to 10``."""
        noun = "an integer" if self.kind == "int" else "a number"
        return f"{noun} from {_fmt(self.minimum)} to {_fmt(self.maximum)}"


@dataclass(frozen=True)
class DatasetLimits:
    """Per-model dataset limits (records, tokens per record, bytes)."""

    min_train_records: int
    max_train_records: int
    max_validation_records: int
    max_total_records: int
    max_tokens_per_record: int
    max_train_bytes: int
    max_validation_bytes: int


@dataclass(frozen=True)
class ModelSpec:
    """Everything the pipeline needs to know about one fine-tunable base model."""

    model_id: str
    display_name: str
    regions: tuple[str, ...]
    limits: DatasetLimits
    hyperparameters: tuple[HyperparameterSpec, ...] = field(default_factory=tuple)

    def hyperparameter(self, name: str) -> HyperparameterSpec | None:
        """The spec of hyperparameter ``name``, or None if the model does not take it."""
        return next((h for h in self.hyperparameters if h.name == name), None)

    @property
    def hyperparameter_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hyperparameters)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; also the shape accepted under the ``models`` configuration key."""
        return {
            "display_name": self.display_name,
            "regions": list(self.regions),
            "limits": dict(self.limits.__dict__),
            "hyperparameters": {
                h.name: {
                    "kind": h.kind,
                    "min": h.minimum,
                    "max": h.maximum,
                    "default": h.default,
                    "description": h.description,
                    "early_stopping": h.early_stopping,
                }
                for h in self.hyperparameters
            },
        }

    @classmethod
    def from_dict(cls, model_id: str, data: Mapping[str, Any], where: str = "models") -> ModelSpec:
        """Parse a model specification, naming the offending key in any error.

        ``where`` is the configuration path used in messages, e.g. ``models.<id>``.
        """
        prefix = f"{where}.{model_id}"
        if not isinstance(data, Mapping):
            raise CatalogError(f"{prefix} must be an object with 'limits' and 'hyperparameters'")
        unknown = set(data) - {"display_name", "regions", "limits", "hyperparameters"}
        if unknown:
            raise CatalogError(
                f"{prefix} has unknown key(s) {sorted(unknown)}; "
                "allowed: display_name, regions, limits, hyperparameters"
            )
        limits_raw = data.get("limits")
        if not isinstance(limits_raw, Mapping):
            raise CatalogError(f"{prefix}.limits must be an object with {sorted(_LIMIT_FIELDS)}")
        missing = _LIMIT_FIELDS - set(limits_raw)
        extra = set(limits_raw) - _LIMIT_FIELDS
        if missing or extra:
            raise CatalogError(
                f"{prefix}.limits must have exactly {sorted(_LIMIT_FIELDS)}"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(extra)}" if extra else "")
            )
        limit_values: dict[str, int] = {}
        for key in sorted(_LIMIT_FIELDS):
            value = limits_raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CatalogError(f"{prefix}.limits.{key} = {value!r}: must be a non-negative integer")
            limit_values[key] = value
        hps_raw = data.get("hyperparameters", {})
        if not isinstance(hps_raw, Mapping):
            raise CatalogError(f"{prefix}.hyperparameters must be an object of name -> spec")
        hps = tuple(
            _parse_hyperparameter(f"{prefix}.hyperparameters.{name}", name, spec)
            for name, spec in hps_raw.items()
        )
        regions = data.get("regions", [])
        if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
            raise CatalogError(f"{prefix}.regions must be a list of region names")
        return cls(
            model_id=model_id,
            display_name=str(data.get("display_name", model_id)),
            regions=tuple(regions),
            limits=DatasetLimits(**limit_values),
            hyperparameters=hps,
        )


_LIMIT_FIELDS = frozenset(DatasetLimits.__dataclass_fields__)


def _parse_hyperparameter(path: str, name: str, spec: Any) -> HyperparameterSpec:
    if not isinstance(spec, Mapping):
        raise CatalogError(f"{path} must be an object with kind, min, max, default")
    kind = spec.get("kind")
    if kind not in ("int", "float"):
        raise CatalogError(f"{path}.kind = {kind!r}: must be 'int' or 'float'")
    values: dict[str, float] = {}
    for key in ("min", "max", "default"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CatalogError(f"{path}.{key} = {value!r}: must be a number")
        values[key] = float(value)
    if values["min"] > values["max"]:
        raise CatalogError(f"{path}: min {values['min']} is greater than max {values['max']}")
    if not values["min"] <= values["default"] <= values["max"]:
        raise CatalogError(f"{path}.default = {values['default']}: outside {values['min']}..{values['max']}")
    return HyperparameterSpec(
        name=name,
        kind=kind,
        minimum=values["min"],
        maximum=values["max"],
        default=values["default"],
        description=str(spec.get("description", "")),
        early_stopping=bool(spec.get("early_stopping", False)),
    )


BUILTIN_MODELS: dict[str, ModelSpec] = {
    CLAUDE_3_HAIKU: ModelSpec(
        model_id=CLAUDE_3_HAIKU,
        display_name="Anthropic Claude 3 Haiku",
        # The only region AWS documents for Claude 3 Haiku fine-tuning.
        regions=("us-west-2",),
        limits=DatasetLimits(
            min_train_records=32,
            max_train_records=10_000,
            max_validation_records=1_000,
            max_total_records=10_000,
            max_tokens_per_record=32_000,
            max_train_bytes=10 * GB,
            max_validation_bytes=1 * GB,
        ),
        hyperparameters=(
            HyperparameterSpec("epochCount", "int", 1, 10, 2, "maximum passes over the training set"),
            HyperparameterSpec("batchSize", "int", 4, 256, 32, "samples per parameter update"),
            HyperparameterSpec(
                "learningRateMultiplier", "float", 0.1, 2, 1, "multiplies the base learning rate"
            ),
            HyperparameterSpec(
                "earlyStoppingThreshold",
                "float",
                0,
                0.1,
                0.001,
                "minimum validation-loss improvement that avoids stopping early",
                early_stopping=True,
            ),
            HyperparameterSpec(
                "earlyStoppingPatience",
                "int",
                1,
                10,
                2,
                "tolerance for stagnant validation loss",
                early_stopping=True,
            ),
        ),
    ),
}


def resolve_model(model_id: str, configured: Mapping[str, ModelSpec] | None = None) -> ModelSpec:
    """The spec for ``model_id``: a configured one wins over the built-in catalog.

    Raises CatalogError with instructions when the model is in neither.
    """
    if configured and model_id in configured:
        return configured[model_id]
    if model_id in BUILTIN_MODELS:
        return BUILTIN_MODELS[model_id]
    known = sorted(set(BUILTIN_MODELS) | set(configured or {}))
    raise CatalogError(
        f"base model {model_id!r} is not in the model catalog (known: {', '.join(known)}). "
        f"If AWS now offers it for fine-tuning, add it under the 'models' context key in cdk.json: "
        f'"models": {{"{model_id}": {{"limits": {{...}}, "hyperparameters": {{...}}}}}} '
        "(see README, 'Adding a model')."
    )


@dataclass(frozen=True)
class HyperparameterProblem:
    """One problem with a hyperparameter value. ``code`` is a public validation code."""

    code: Literal["UNKNOWN_HYPERPARAMETER", "HYPERPARAMETER_INVALID", "HYPERPARAMETER_OUT_OF_RANGE"]
    name: str
    message: str


def parse_hyperparameter_value(spec: HyperparameterSpec, raw: object) -> float | int | None:
    """A JSON number or numeric string as int/float per ``spec.kind``; None if it is not valid."""
    if isinstance(raw, bool):
        return None
    value: float
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(value):
        return None
    if spec.kind == "int":
        return int(value) if value.is_integer() else None
    return value


def check_hyperparameters(values: Mapping[str, object], spec: ModelSpec) -> list[HyperparameterProblem]:
    """Every problem with ``values`` against the model's names and ranges (empty when all is well)."""
    problems: list[HyperparameterProblem] = []
    for name, raw in values.items():
        hp = spec.hyperparameter(name)
        if hp is None:
            problems.append(
                HyperparameterProblem(
                    "UNKNOWN_HYPERPARAMETER",
                    name,
                    f"{spec.display_name} does not take hyperparameter {name!r}; "
                    f"use one of: {', '.join(spec.hyperparameter_names)}",
                )
            )
            continue
        parsed = parse_hyperparameter_value(hp, raw)
        if parsed is None:
            problems.append(
                HyperparameterProblem(
                    "HYPERPARAMETER_INVALID",
                    name,
                    f"{name} = {raw!r} is not valid: it must be {hp.describe_range()} "
                    "(a JSON number or a numeric string)",
                )
            )
        elif not hp.minimum <= parsed <= hp.maximum:
            problems.append(
                HyperparameterProblem(
                    "HYPERPARAMETER_OUT_OF_RANGE",
                    name,
                    f"{name} = {raw!r} is out of range: it must be {hp.describe_range()}",
                )
            )
    return problems


def effective_hyperparameters(
    spec: ModelSpec,
    defaults: Mapping[str, object] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> dict[str, int | float]:
    """Configured defaults merged with a run's overrides, parsed to numbers.

    Values that do not parse are left out; call :func:`check_hyperparameters` first to report them.
    Only names explicitly given are included, so Bedrock applies its own default for the rest.
    """
    merged: dict[str, object] = {**(defaults or {}), **(overrides or {})}
    result: dict[str, int | float] = {}
    for name, raw in merged.items():
        hp = spec.hyperparameter(name)
        if hp is None:
            continue
        parsed = parse_hyperparameter_value(hp, raw)
        if parsed is not None:
            result[name] = parsed
    return result


def to_bedrock_hyperparameters(values: Mapping[str, int | float]) -> dict[str, str]:
    """Bedrock's ``hyperParameters`` is a map of string to string: render numbers canonically."""
    return {name: _fmt(value) for name, value in values.items()}


def _fmt(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return repr(float(value))
