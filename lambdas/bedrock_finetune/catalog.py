"""The model catalog: the single source of truth for every model the pipeline can fine-tune.

For each model: its Regions, data format, dataset limits, hyperparameters (names, types, ranges,
defaults), whether it takes a validation file, the media it accepts, the serving modes it supports
and what is known of its lifecycle. The validator Lambda, the ``finetune`` CLI, the start-job
Lambda, preflight and the synth-time configuration check all read this module.

Every number cites the public AWS page it comes from (``sources`` of each model, and the
``_SRC_*`` constants below). Where AWS documents no number, ``notes`` says so and the value is a
stated assumption; a platform team overrides any of it, or adds a model that becomes fine-tunable
later, through the ``models`` configuration key, in the shape of :func:`ModelSpec.to_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

HyperparameterKind = Literal["int", "float"]
ServingMode = Literal["on_demand", "provisioned"]
LifecycleStatus = Literal["LEGACY", "EOL"]

#: The record formats the validator speaks. Each model has exactly one.
FORMAT_CLAUDE = "claude-messages"
FORMAT_CONVERSE = "bedrock-conversation-2024"
FORMAT_PROMPT_COMPLETION = "prompt-completion"
DATA_FORMATS: tuple[str, ...] = (FORMAT_CLAUDE, FORMAT_CONVERSE, FORMAT_PROMPT_COMPLETION)
SERVING_MODES: tuple[str, ...] = ("on_demand", "provisioned")

CLAUDE_3_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
NOVA_LITE = "amazon.nova-lite-v1:0:300k"
NOVA_PRO = "amazon.nova-pro-v1:0:300k"
NOVA_2_LITE = "amazon.nova-2-lite-v1:0:256k"
LLAMA_31_8B = "meta.llama3-1-8b-instruct-v1:0:128k"
LLAMA_31_70B = "meta.llama3-1-70b-instruct-v1:0:128k"
LLAMA_32_1B = "meta.llama3-2-1b-instruct-v1:0:128k"
LLAMA_32_3B = "meta.llama3-2-3b-instruct-v1:0:128k"
LLAMA_32_11B = "meta.llama3-2-11b-instruct-v1:0:128k"
LLAMA_32_90B = "meta.llama3-2-90b-instruct-v1:0:128k"

#: What preflight suggests when the configured model can no longer be fine-tuned: text and
#: images, on-demand serving, in us-east-1.
RECOMMENDED_MODEL = NOVA_LITE

_UG = "https://docs.aws.amazon.com/bedrock/latest/userguide/"
_SRC_REGIONS = _UG + "custom-model-fine-tuning.html"
_SRC_PREPARE = _UG + "model-customization-prepare.html"
_SRC_IMAGE_TEXT = _UG + "model-customization-prepare.html#preparing-image-text-data"
_SRC_HP_CLAUDE = _UG + "cm-hp-anth-claude-3.html"
_SRC_HP_NOVA = _UG + "cm-hp-nova-mm.html"
_SRC_HP_LLAMA31 = _UG + "cm-hp-meta-llama31.html"
_SRC_HP_LLAMA32 = _UG + "cm-hp-meta-llama32.html"
_SRC_NOVA_DATA = "https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html"
_SRC_NOVA_VALIDATOR = (
    "https://github.com/aws-samples/amazon-bedrock-samples/blob/main/custom-models/bedrock-fine-tuning/"
    "nova/understanding/dataset_validation/nova_ft_dataset_validator.py"
)
_SRC_NOVA2_DATA = _UG + "nova-2-sft-data-prep.html"
_SRC_ON_DEMAND = _UG + "deploy-custom-model-on-demand.html"
_SRC_PT = _UG + "prov-thru-purchase.html"
_SRC_HAIKU_CARD = _UG + "model-card-anthropic-claude-3-haiku.html"
_SRC_LIFECYCLE = _UG + "model-lifecycle.html"

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
class MediaSpec:
    """The media a model accepts in user turns (empty formats: text only)."""

    image_formats: tuple[str, ...] = ()
    video_formats: tuple[str, ...] = ()
    max_images_per_record: int = 0
    max_videos_per_record: int = 0

    @property
    def text_only(self) -> bool:
        return not self.image_formats and not self.video_formats


@dataclass(frozen=True)
class LifecycleNotice:
    """A documented lifecycle date of a model in some Regions (Legacy or end of life)."""

    status: LifecycleStatus
    date: str
    regions: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything the pipeline needs to know about one fine-tunable base model."""

    model_id: str
    display_name: str
    regions: tuple[str, ...]
    limits: DatasetLimits
    hyperparameters: tuple[HyperparameterSpec, ...] = field(default_factory=tuple)
    data_format: str = FORMAT_CLAUDE
    takes_validation_file: bool = True
    media: MediaSpec = field(default_factory=MediaSpec)
    #: Nova 2 only: assistant turns may carry ``reasoningContent`` blocks.
    reasoning_content: bool = False
    #: Strings that fail the job when they appear in user or system text.
    reserved_strings: tuple[str, ...] = ()
    serving_modes: tuple[str, ...] = ("provisioned",)
    lifecycle: tuple[LifecycleNotice, ...] = ()
    sources: tuple[str, ...] = ()
    #: What AWS does not document, and the assumption made instead.
    notes: tuple[str, ...] = ()

    def lifecycle_in(self, region: str) -> LifecycleNotice | None:
        """The documented lifecycle notice for ``region`` (end of life wins over Legacy)."""
        notices = [n for n in self.lifecycle if region in n.regions]
        return next((n for n in notices if n.status == "EOL"), notices[0] if notices else None)

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
            "data_format": self.data_format,
            "takes_validation_file": self.takes_validation_file,
            "media": {
                "image_formats": list(self.media.image_formats),
                "video_formats": list(self.media.video_formats),
                "max_images_per_record": self.media.max_images_per_record,
                "max_videos_per_record": self.media.max_videos_per_record,
            },
            "reasoning_content": self.reasoning_content,
            "reserved_strings": list(self.reserved_strings),
            "serving_modes": list(self.serving_modes),
            "lifecycle": [
                {"status": n.status, "date": n.date, "regions": list(n.regions), "source": n.source}
                for n in self.lifecycle
            ],
            "sources": list(self.sources),
            "notes": list(self.notes),
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
        unknown = set(data) - _SPEC_KEYS
        if unknown:
            raise CatalogError(
                f"{prefix} has unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_SPEC_KEYS))}"
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
        data_format = data.get("data_format", FORMAT_CLAUDE)
        if data_format not in DATA_FORMATS:
            raise CatalogError(
                f"{prefix}.data_format = {data_format!r}: must be one of {', '.join(DATA_FORMATS)}"
            )
        serving = _string_list(data, "serving_modes", prefix, ["provisioned"])
        if not set(serving) <= set(SERVING_MODES):
            raise CatalogError(f"{prefix}.serving_modes = {serving!r}: allowed {', '.join(SERVING_MODES)}")
        return cls(
            model_id=model_id,
            display_name=str(data.get("display_name", model_id)),
            regions=tuple(regions),
            limits=DatasetLimits(**limit_values),
            hyperparameters=hps,
            data_format=data_format,
            takes_validation_file=_flag(data, "takes_validation_file", prefix, default=True),
            media=_parse_media(data.get("media", {}), f"{prefix}.media"),
            reasoning_content=_flag(data, "reasoning_content", prefix, default=False),
            reserved_strings=tuple(_string_list(data, "reserved_strings", prefix, [])),
            serving_modes=tuple(serving),
            lifecycle=_parse_lifecycle(data.get("lifecycle", []), f"{prefix}.lifecycle"),
            sources=tuple(_string_list(data, "sources", prefix, [])),
            notes=tuple(_string_list(data, "notes", prefix, [])),
        )


_LIMIT_FIELDS = frozenset(DatasetLimits.__dataclass_fields__)
_SPEC_KEYS = frozenset(
    {
        "display_name",
        "regions",
        "limits",
        "hyperparameters",
        "data_format",
        "takes_validation_file",
        "media",
        "reasoning_content",
        "reserved_strings",
        "serving_modes",
        "lifecycle",
        "sources",
        "notes",
    }
)
_MEDIA_KEYS = frozenset(MediaSpec.__dataclass_fields__)


def _flag(data: Mapping[str, Any], key: str, prefix: str, *, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise CatalogError(f"{prefix}.{key} = {value!r}: must be true or false")
    return value


def _string_list(data: Mapping[str, Any], key: str, prefix: str, default: list[str]) -> list[str]:
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{prefix}.{key} must be a list of strings")
    return value


def _parse_media(raw: Any, path: str) -> MediaSpec:
    if not isinstance(raw, Mapping) or not set(raw) <= _MEDIA_KEYS:
        raise CatalogError(f"{path} must be an object with keys among {sorted(_MEDIA_KEYS)}")
    counts: dict[str, int] = {}
    for key in ("max_images_per_record", "max_videos_per_record"):
        value = raw.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CatalogError(f"{path}.{key} = {value!r}: must be a non-negative integer")
        counts[key] = value
    return MediaSpec(
        image_formats=tuple(f.lower() for f in _string_list(raw, "image_formats", path, [])),
        video_formats=tuple(f.lower() for f in _string_list(raw, "video_formats", path, [])),
        **counts,
    )


def _parse_lifecycle(raw: Any, path: str) -> tuple[LifecycleNotice, ...]:
    if not isinstance(raw, list):
        raise CatalogError(f"{path} must be a list of {{status, date, regions, source}}")
    notices = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(item, Mapping) or item.get("status") not in ("LEGACY", "EOL"):
            raise CatalogError(f"{where}.status must be LEGACY or EOL")
        date = item.get("date")
        if not isinstance(date, str) or len(date) != 10:
            raise CatalogError(f"{where}.date must be a YYYY-MM-DD string")
        notices.append(
            LifecycleNotice(
                status=item["status"],
                date=date,
                regions=tuple(_string_list(item, "regions", where, [])),
                source=str(item.get("source", "")),
            )
        )
    return tuple(notices)


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


_CLAUDE_HYPERPARAMETERS = (  # _SRC_HP_CLAUDE
    HyperparameterSpec("epochCount", "int", 1, 10, 2, "maximum passes over the training set"),
    HyperparameterSpec("batchSize", "int", 4, 256, 32, "samples per parameter update"),
    HyperparameterSpec("learningRateMultiplier", "float", 0.1, 2, 1, "multiplies the base learning rate"),
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
)

_NOVA_HYPERPARAMETERS = (  # _SRC_HP_NOVA
    HyperparameterSpec("epochCount", "int", 1, 5, 2, "passes over the training set"),
    HyperparameterSpec("learningRate", "float", 1e-6, 1e-4, 1e-5, "rate of parameter updates"),
    HyperparameterSpec(
        "learningRateWarmupSteps",
        "int",
        0,
        100,
        10,
        "iterations over which the learning rate rises to its set value (AWS suggests the dataset "
        "size divided by 640 for Micro, 160 for Lite, 320 for Pro)",
    ),
)

_LLAMA_HYPERPARAMETERS = (  # _SRC_HP_LLAMA31, _SRC_HP_LLAMA32
    HyperparameterSpec("epochCount", "int", 1, 10, 5, "passes over the training set"),
    HyperparameterSpec("batchSize", "int", 1, 1, 1, "samples per parameter update (fixed at 1)"),
    HyperparameterSpec("learningRate", "float", 5e-6, 0.1, 1e-4, "rate of parameter updates"),
)

#: Reserved keywords of the Nova format: a user or system prompt that contains one fails the job.
NOVA_RESERVED_STRINGS = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
#: Strings Bedrock reserves in Claude 3 Haiku records (system and every content).
CLAUDE_RESERVED_STRINGS = ("\nHuman:", "\nAssistant:")

_NOVA_IMAGES = ("jpeg", "png", "gif", "webp")  # _SRC_NOVA_VALIDATOR
_NOVA_VIDEOS = ("mov", "mkv", "mp4", "webm")  # _SRC_NOVA_VALIDATOR
_UNDOCUMENTED_BYTES = (
    "AWS documents no file-size limit for this model's training and validation files; the Claude 3 "
    "Haiku limits (10 GB, 1 GB) are assumed"
)


def _claude_3_haiku() -> ModelSpec:
    return ModelSpec(
        model_id=CLAUDE_3_HAIKU,
        display_name="Anthropic Claude 3 Haiku",
        # The only region AWS documents for Claude 3 Haiku fine-tuning.
        regions=("us-west-2",),
        limits=DatasetLimits(  # _SRC_PREPARE, "Anthropic Claude 3 Haiku" table
            min_train_records=32,
            max_train_records=10_000,
            max_validation_records=1_000,
            max_total_records=10_000,
            max_tokens_per_record=32_000,
            max_train_bytes=10 * GB,
            max_validation_bytes=1 * GB,
        ),
        hyperparameters=_CLAUDE_HYPERPARAMETERS,
        data_format=FORMAT_CLAUDE,
        reserved_strings=CLAUDE_RESERVED_STRINGS,
        serving_modes=("provisioned",),
        lifecycle=(LifecycleNotice("EOL", "2026-09-10", ("us-west-2",), _SRC_HAIKU_CARD),),
        sources=(_SRC_REGIONS, _SRC_PREPARE, _SRC_HP_CLAUDE, _SRC_PT, _SRC_HAIKU_CARD),
    )


def _nova(model_id: str, name: str, context_tokens: int, media: MediaSpec) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        display_name=name,
        regions=("us-east-1",),  # _SRC_REGIONS
        limits=DatasetLimits(
            min_train_records=8,  # _SRC_NOVA_VALIDATOR: 8 to 20,000 samples
            max_train_records=20_000,
            max_validation_records=20_000,
            max_total_records=20_000,
            max_tokens_per_record=context_tokens,
            max_train_bytes=10 * GB,
            max_validation_bytes=1 * GB,
        ),
        hyperparameters=_NOVA_HYPERPARAMETERS,
        data_format=FORMAT_CONVERSE,
        media=media,
        reserved_strings=NOVA_RESERVED_STRINGS,
        serving_modes=("on_demand", "provisioned"),
        sources=(_SRC_REGIONS, _SRC_NOVA_DATA, _SRC_NOVA_VALIDATOR, _SRC_HP_NOVA, _SRC_ON_DEMAND, _SRC_PT),
        notes=(
            "Record counts come from AWS's sample validator (8 to 20,000 training samples); AWS "
            "documents no separate validation or total limit, so 20,000 is assumed for both",
            f"AWS documents no per-record token limit for fine-tuning; the model's context length "
            f"({context_tokens:,} tokens, the suffix of its model ID) is assumed",
            _UNDOCUMENTED_BYTES,
        ),
    )


def _nova_2_lite() -> ModelSpec:
    base = _nova(
        NOVA_2_LITE,
        "Amazon Nova 2 Lite",
        256_000,
        MediaSpec(("png", "jpeg", "gif"), ("mov", "mkv", "mp4"), 10, 1),  # _SRC_NOVA2_DATA
    )
    return ModelSpec(
        **{
            **base.__dict__,
            "takes_validation_file": False,  # _SRC_NOVA2_DATA: "Validation sets ... not supported"
            "reasoning_content": True,
            "serving_modes": ("provisioned",),
            "sources": (_SRC_REGIONS, _SRC_NOVA2_DATA, _SRC_HP_NOVA),
            "notes": (
                *base.notes,
                "Bedrock documents no hyperparameter table for Nova 2 Lite; the Nova Micro/Lite/Pro "
                "names and ranges are assumed",
                "Bedrock documents no on-demand deployment for Nova 2 Lite; only Provisioned "
                "Throughput is listed",
                "Record counts for Nova 2 Lite are not documented; the Nova 1 figures are assumed",
            ),
        }
    )


#: Llama 3.2's lifecycle: Bedrock's model lifecycle pages (_SRC_LIFECYCLE, and its "Legacy" page
#: for models launched before September 7, 2026) list no Legacy or end-of-life date for Llama 3.2
#: in what could be consulted on 2026-11-28, so no notice is recorded and the models count as
#: Active. When AWS publishes a date, add it under ``lifecycle`` (here, or in ``models``).
_LLAMA_32_LIFECYCLE_NOTE = (
    "AWS documents no Legacy or end-of-life date for Llama 3.2 on the Bedrock model lifecycle page "
    "(checked 2026-11-28); it is treated as Active. Add a lifecycle notice under 'models' when AWS "
    "publishes one"
)


def _llama(model_id: str, name: str, *, version: str, tokens: int, images: bool = False) -> ModelSpec:
    prompt_completion = version == "3.1"
    hp_source = _SRC_HP_LLAMA31 if prompt_completion else _SRC_HP_LLAMA32
    lifecycle_notes = () if prompt_completion else (_LLAMA_32_LIFECYCLE_NOTE,)
    return ModelSpec(
        model_id=model_id,
        display_name=name,
        regions=("us-west-2",),  # _SRC_REGIONS
        limits=DatasetLimits(  # _SRC_PREPARE, "Meta Llama 3.1" and "Meta Llama 3.2" tables
            min_train_records=100,
            max_train_records=10_000,
            max_validation_records=10_000,
            max_total_records=10_000,
            max_tokens_per_record=tokens,
            max_train_bytes=10 * GB,
            max_validation_bytes=1 * GB,
        ),
        hyperparameters=_LLAMA_HYPERPARAMETERS,
        data_format=FORMAT_PROMPT_COMPLETION if prompt_completion else FORMAT_CONVERSE,
        # _SRC_IMAGE_TEXT: gif, jpeg, png and webp for the 11B and 90B Vision models.
        media=MediaSpec(("gif", "jpeg", "png", "webp"), (), 0, 0) if images else MediaSpec(),
        serving_modes=("provisioned",),
        sources=(_SRC_REGIONS, _SRC_PREPARE, hp_source, _SRC_PT)
        + ((_SRC_IMAGE_TEXT,) if images else ())
        + (() if prompt_completion else (_SRC_LIFECYCLE,)),
        notes=(
            "AWS documents the 100-record minimum for training and validation records together; "
            "it is applied to the training file here",
            *(
                ("AWS documents no limit on images per record for Llama 3.2 Vision; none is applied",)
                if images
                else ()
            ),
            _UNDOCUMENTED_BYTES,
            *lifecycle_notes,
        ),
    )


BUILTIN_MODELS: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        _claude_3_haiku(),
        _nova(NOVA_MICRO, "Amazon Nova Micro", 128_000, MediaSpec()),
        _nova(NOVA_LITE, "Amazon Nova Lite", 300_000, MediaSpec(_NOVA_IMAGES, _NOVA_VIDEOS, 10, 1)),
        _nova(NOVA_PRO, "Amazon Nova Pro", 300_000, MediaSpec(_NOVA_IMAGES, _NOVA_VIDEOS, 10, 1)),
        _nova_2_lite(),
        _llama(LLAMA_31_8B, "Meta Llama 3.1 8B Instruct", version="3.1", tokens=16_000),
        _llama(LLAMA_31_70B, "Meta Llama 3.1 70B Instruct", version="3.1", tokens=16_000),
        _llama(LLAMA_32_1B, "Meta Llama 3.2 1B Instruct", version="3.2", tokens=16_000),
        _llama(LLAMA_32_3B, "Meta Llama 3.2 3B Instruct", version="3.2", tokens=16_000),
        _llama(LLAMA_32_11B, "Meta Llama 3.2 11B Vision Instruct", version="3.2", tokens=16_000, images=True),
        _llama(LLAMA_32_90B, "Meta Llama 3.2 90B Vision Instruct", version="3.2", tokens=10_000, images=True),
    )
}


def models_in_region(region: str) -> list[ModelSpec]:
    """Built-in models that can be fine-tuned in ``region``."""
    return [spec for spec in BUILTIN_MODELS.values() if region in spec.regions]


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
