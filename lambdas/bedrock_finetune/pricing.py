"""Price estimates: the built-in price table, its overrides, and the arithmetic on them.

The single source of truth for what fine-tuning and serving a model is estimated to cost. The
``finetune validate`` command, the approval request and the notifications read it; nothing here
calls AWS. Every amount is an estimate in US dollars, labelled with the date of the figure it
rests on. Where no figure is known, the amount is None and the estimate says why instead of
printing a number.

Sources read (the table's date, :data:`PRICE_TABLE_DATE`, is the day they were read, as no copy
shows the date it was taken):

- https://aws.amazon.com/bedrock/pricing/, with its translations (de, es, it, tr, vi) and mirrors:
  the stored copies read carry the page's text but no model-customization figure: neither training
  per 1,000 tokens, nor storage per month, nor Provisioned Throughput per model unit-hour, nor
  custom-model on-demand prices, for any model in the catalog. A transcription of the same page
  taken 2026-10-07
  (https://raw.githubusercontent.com/api-evangelist/amazon-bedrock/refs/heads/main/plans/amazon-bedrock-plans-pricing.yml)
  finds the same and says why: the page renders its prices in the browser, so "no numeric prices
  appear in the captured text".
- What the documentation does say, and what the arithmetic below follows:
  training is billed by the tokens processed, so every epoch adds the training data's tokens again
  (https://docs.aws.amazon.com/bedrock/latest/userguide/cm-hp-nova-mm.html and the other
  hyperparameter pages); Provisioned Throughput is billed by the hour per model unit, with no
  commitment or a discounted 1- or 6-month term
  (https://docs.aws.amazon.com/bedrock/latest/userguide/prov-throughput.html); an on-demand
  deployment of a custom Nova model is billed by its input and output tokens
  (https://docs.aws.amazon.com/nova/latest/userguide/custom-fine-tune-odi.html).

So every built-in figure is None: not published in the sources read. A platform team sets the
figures it knows under the ``prices`` configuration key (:func:`parse_price_overrides`); to update
the defaults, add them to ``_PUBLISHED`` with the page and the date they were read.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bedrock_finetune.catalog import BUILTIN_MODELS, ModelSpec

#: The page every built-in figure would come from.
PRICING_PAGE = "https://aws.amazon.com/bedrock/pricing/"
#: The day the sources of the built-in table were read.
PRICE_TABLE_DATE = "2026-11-28"
#: Hours in the monthly estimates: 365 days x 24 hours / 12 months, as AWS's own calculators use.
HOURS_PER_MONTH = 730
#: The Provisioned Throughput commitment terms, as the ``commitment`` configuration key names them.
COMMITMENTS: tuple[str, ...] = ("none", "OneMonth", "SixMonths")
#: The figures a price table holds besides Provisioned Throughput, each in US dollars.
TOKEN_AND_STORAGE_FIELDS: tuple[str, ...] = (
    "training_per_1k_tokens",
    "storage_per_month",
    "on_demand_input_per_1k",
    "on_demand_output_per_1k",
)
PT_FIELD = "pt_per_unit_hour"
#: The fields a ``prices`` entry may set.
OVERRIDE_FIELDS: tuple[str, ...] = (*TOKEN_AND_STORAGE_FIELDS, PT_FIELD)

#: One model's entry under the ``prices`` key, parsed: field -> USD, and commitment -> USD for PT.
PriceOverride = Mapping[str, float | Mapping[str, float]]
#: The ``prices`` key, parsed: model id -> its entry.
PriceOverrides = Mapping[str, PriceOverride]

_COMMITMENT_WORDS = {
    "none": "no commitment",
    "OneMonth": "1-month commitment",
    "SixMonths": "6-month commitment",
}
_DESCRIPTIONS = {
    "training_per_1k_tokens": "training price per 1,000 tokens",
    "storage_per_month": "custom model storage price per month",
    "on_demand_input_per_1k": "on-demand price per 1,000 input tokens",
    "on_demand_output_per_1k": "on-demand price per 1,000 output tokens",
}


class PriceError(ValueError):
    """A ``prices`` entry is malformed. The message names the key, the model and the field."""


@dataclass(frozen=True)
class ModelPrices:
    """What one model costs to fine-tune, store and serve, in US dollars; None where not known.

    ``configured`` names the figures set under the ``prices`` key (``pt_per_unit_hour.<term>`` for
    a Provisioned Throughput term); the others come from the table of ``taken`` at ``source``.
    """

    model_id: str = ""
    training_per_1k_tokens: float | None = None
    storage_per_month: float | None = None
    #: Per model unit and hour, keyed by commitment term: ``none``, ``OneMonth``, ``SixMonths``.
    pt_per_unit_hour: Mapping[str, float | None] = field(default_factory=dict)
    on_demand_input_per_1k: float | None = None
    on_demand_output_per_1k: float | None = None
    source: str = PRICING_PAGE
    taken: str = PRICE_TABLE_DATE
    notes: str = ""
    configured: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.pt_per_unit_hour) - set(COMMITMENTS)
        if unknown:
            raise PriceError(
                f"pt_per_unit_hour: unknown term(s) {sorted(unknown)}; terms: {', '.join(COMMITMENTS)}"
            )
        terms = {term: self.pt_per_unit_hour.get(term) for term in COMMITMENTS}
        object.__setattr__(self, "pt_per_unit_hour", MappingProxyType(terms))

    def pt_for(self, commitment: str | None) -> float | None:
        """The price per model unit-hour for ``commitment`` (None or ``none``: no commitment)."""
        return self.pt_per_unit_hour[_term(commitment)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a Lambda setting carries it); :meth:`from_dict` reads it back."""
        return {
            "model_id": self.model_id,
            **{name: getattr(self, name) for name in TOKEN_AND_STORAGE_FIELDS},
            PT_FIELD: dict(self.pt_per_unit_hour),
            "source": self.source,
            "taken": self.taken,
            "notes": self.notes,
            "configured": sorted(self.configured),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelPrices:
        """The prices :meth:`to_dict` wrote."""
        return cls(
            model_id=str(data.get("model_id", "")),
            **{name: data.get(name) for name in TOKEN_AND_STORAGE_FIELDS},
            pt_per_unit_hour=dict(data.get(PT_FIELD) or {}),
            source=str(data.get("source", PRICING_PAGE)),
            taken=str(data.get("taken", PRICE_TABLE_DATE)),
            notes=str(data.get("notes", "")),
            configured=frozenset(data.get("configured", ())),
        )


@dataclass(frozen=True)
class Estimate:
    """One estimated amount, its unit, and a sentence that says what it rests on.

    ``amount`` is None when a figure it needs is not known; ``text`` then says which and how to set
    it. ``taken`` is the date of the price table the figure comes from (None for a configured one).
    """

    amount: float | None
    unit: str
    text: str
    taken: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "unit": self.unit,
            "text": self.text,
            "taken": self.taken,
            "source": self.source,
        }


#: Figures read from a page, as :class:`ModelPrices` keyword arguments per model id, each entry with
#: its ``source`` and the date it was read (``taken``). Empty: no source read gives one.
_PUBLISHED: Mapping[str, Mapping[str, Any]] = {}


def _builtin(spec: ModelSpec) -> ModelPrices:
    """The built-in prices of one catalog model: see the module docstring for what was read."""
    regions = ", ".join(spec.regions) or "no documented Region"
    serving = (
        "Its custom models can be served on demand (billed per input and output token) or with "
        "Provisioned Throughput."
        if "on_demand" in spec.serving_modes
        else "Its custom models are served with Provisioned Throughput only; on-demand figures do not apply."
    )
    return ModelPrices(
        model_id=spec.model_id,
        notes=(
            f"{spec.display_name} is fine-tuned in {regions}. The copies of {PRICING_PAGE} read on "
            f"{PRICE_TABLE_DATE} show none of its customization prices (the page renders them in the "
            f"browser), so every figure is None until set under the prices key. {serving}"
        ),
        **_PUBLISHED.get(spec.model_id, {}),
    )


#: The built-in table: one entry per catalog model.
DEFAULT_PRICES: Mapping[str, ModelPrices] = MappingProxyType(
    {model_id: _builtin(spec) for model_id, spec in BUILTIN_MODELS.items()}
)


def parse_price_overrides(raw: Any, known_models: Collection[str] | None = None) -> dict[str, PriceOverride]:
    """Validate the ``prices`` key: ``{model_id: {field: USD}}``, with Provisioned Throughput as
    ``{"pt_per_unit_hour": {"none": USD, "OneMonth": USD, "SixMonths": USD}}`` (any of the terms).

    ``known_models``, when given, are the model ids an entry may name. Raises :class:`PriceError`
    naming the key, the model and the field.
    """
    if not isinstance(raw, Mapping):
        raise PriceError(
            f"prices = {raw!r}: must be a JSON object of model id -> {{field: USD}}, e.g. "
            '{"amazon.nova-lite-v1:0:300k": {"training_per_1k_tokens": 0.002}}'
        )
    parsed: dict[str, PriceOverride] = {}
    for model_id, entry in raw.items():
        where = f"prices.{model_id}"
        if known_models is not None and model_id not in known_models:
            raise PriceError(
                f"prices: {model_id!r} is not a model in the catalog or under models; "
                f"known: {', '.join(sorted(known_models))}"
            )
        if not isinstance(entry, Mapping):
            raise PriceError(
                f"{where} = {entry!r}: must be an object of field -> USD ({', '.join(OVERRIDE_FIELDS)})"
            )
        unknown = sorted(set(entry) - set(OVERRIDE_FIELDS))
        if unknown:
            raise PriceError(
                f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(OVERRIDE_FIELDS)}"
            )
        values: dict[str, float | Mapping[str, float]] = {
            name: _usd(f"{where}.{name}", value) for name, value in entry.items() if name != PT_FIELD
        }
        if PT_FIELD in entry:
            terms = entry[PT_FIELD]
            if not isinstance(terms, Mapping) or not set(terms) <= set(COMMITMENTS):
                raise PriceError(
                    f"{where}.{PT_FIELD} = {terms!r}: must be an object of commitment term -> USD per "
                    f"model unit-hour, terms: {', '.join(COMMITMENTS)}"
                )
            values[PT_FIELD] = {term: _usd(f"{where}.{PT_FIELD}.{term}", v) for term, v in terms.items()}
        parsed[str(model_id)] = values
    return parsed


def prices_for(model_id: str, overrides: Mapping[str, Any] | None = None) -> ModelPrices:
    """The prices of ``model_id``: the built-in table, with the figures ``overrides`` (the ``prices``
    configuration key) sets. A model outside the table has no figures until configured."""
    base = DEFAULT_PRICES.get(model_id) or ModelPrices(
        model_id=model_id,
        notes=(
            f"{model_id} is not in the built-in price table; every figure is None until set under the "
            "prices key."
        ),
    )
    entry = parse_price_overrides(overrides or {}).get(model_id)
    if not entry:
        return base
    values: dict[str, Any] = {name: getattr(base, name) for name in TOKEN_AND_STORAGE_FIELDS}
    pt = dict(base.pt_per_unit_hour)
    configured = set(base.configured)
    for name, value in entry.items():
        if isinstance(value, Mapping):
            pt.update(value)
            configured.update(f"{PT_FIELD}.{term}" for term in value)
        else:
            values[name] = value
            configured.add(name)
    return ModelPrices(
        model_id=model_id,
        **values,
        pt_per_unit_hour=pt,
        source=base.source,
        taken=base.taken,
        notes=base.notes,
        configured=frozenset(configured),
    )


def training_estimate(billable_tokens: int, epochs: int, prices: ModelPrices) -> Estimate:
    """The training cost: ``billable_tokens`` (one pass over the training data; validation data is
    not billed as training) x ``epochs`` x the price per 1,000 tokens."""
    _check_count("billable_tokens", billable_tokens)
    _check_count("epochs", epochs)
    price = prices.training_per_1k_tokens
    if price is None:
        return _unknown("the training cost", prices, "training_per_1k_tokens", "USD")
    amount = billable_tokens * epochs * price / 1000
    return _known(
        f"Training cost estimate: {format_usd(amount)} ({billable_tokens:,} tokens x "
        f"{_count(epochs, 'epoch')} x {_rate(price)} per 1,000 tokens",
        amount,
        "USD",
        prices,
        "training_per_1k_tokens",
    )


def throughput_estimate(prices: ModelPrices, model_units: int, commitment: str | None) -> dict[str, Estimate]:
    """What Provisioned Throughput of ``model_units`` bills for ``commitment`` (None or ``none``: no
    commitment): ``per_hour``, and ``per_month`` at :data:`HOURS_PER_MONTH` hours a month."""
    if isinstance(model_units, bool) or not isinstance(model_units, int) or model_units < 1:
        raise ValueError(f"model_units = {model_units!r}: must be an integer of 1 or more")
    term = _term(commitment)
    name = f"{PT_FIELD}.{term}"
    rate = prices.pt_per_unit_hour[term]
    what = f"Provisioned Throughput ({_count(model_units, 'model unit')}, {_COMMITMENT_WORDS[term]})"
    if rate is None:
        hourly = _unknown(f"the cost of {what}", prices, name, "USD/hour")
        return {
            "per_hour": hourly,
            "per_month": Estimate(None, "USD/month", hourly.text, hourly.taken, hourly.source),
        }
    per_hour = model_units * rate
    per_month = per_hour * HOURS_PER_MONTH
    return {
        "per_hour": _known(
            f"{what} estimate: {format_usd(per_hour)} per hour ({_count(model_units, 'model unit')} x "
            f"{_rate(rate)} per model unit-hour",
            per_hour,
            "USD/hour",
            prices,
            name,
        ),
        "per_month": _known(
            f"{what} estimate: {format_usd(per_month)} per month ({HOURS_PER_MONTH} hours a month x "
            f"{format_usd(per_hour)} per hour",
            per_month,
            "USD/month",
            prices,
            name,
        ),
    }


def on_demand_estimate(prices: ModelPrices, input_tokens: int, output_tokens: int) -> Estimate:
    """What an on-demand deployment bills for ``input_tokens`` and ``output_tokens``."""
    _check_count("input_tokens", input_tokens)
    _check_count("output_tokens", output_tokens)
    price_in, price_out = prices.on_demand_input_per_1k, prices.on_demand_output_per_1k
    if price_in is None:
        return _unknown("the on-demand inference cost", prices, "on_demand_input_per_1k", "USD")
    if price_out is None:
        return _unknown("the on-demand inference cost", prices, "on_demand_output_per_1k", "USD")
    amount = input_tokens * price_in / 1000 + output_tokens * price_out / 1000
    return _known(
        f"On-demand inference estimate: {format_usd(amount)} for {input_tokens:,} input and "
        f"{output_tokens:,} output tokens ({_rate(price_in)} and {_rate(price_out)} per 1,000",
        amount,
        "USD",
        prices,
        "on_demand_input_per_1k",
        "on_demand_output_per_1k",
    )


def storage_estimate(prices: ModelPrices) -> Estimate:
    """What keeping one custom model of this base model bills a month."""
    price = prices.storage_per_month
    if price is None:
        return _unknown("the custom model storage cost", prices, "storage_per_month", "USD/month")
    return _known(
        f"Custom model storage estimate: {format_usd(price)} per month for each custom model (",
        price,
        "USD/month",
        prices,
        "storage_per_month",
    )


def format_usd(amount: float | None) -> str:
    """``$1,234.57``; amounts under a cent keep two significant digits (``$0.0042``); None: ``no figure``."""
    if amount is None:
        return "no figure"
    sign = "-" if amount < 0 else ""
    if amount == 0 or abs(amount) >= 0.01:
        return f"{sign}${abs(amount):,.2f}"
    decimals = min(12, 1 - math.floor(math.log10(abs(amount))))
    return f"{sign}${abs(amount):.{decimals}f}"


def _rate(price: float) -> str:
    """A unit price without rounding its digits away: ``$0.000035``, ``$20.50``."""
    whole, _, fraction = f"{price:,.10f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _basis(prices: ModelPrices, *names: str) -> tuple[str, str | None, str | None]:
    """Where the figures ``names`` come from: the words, the table's date and its source (the date
    and source only when at least one comes from the table)."""
    configured = [name in prices.configured for name in names]
    table = f"price table of {prices.taken}, {prices.source}"
    if all(configured):
        return "configured under the prices key", None, None
    if any(configured):
        return f"configured under the prices key and {table}", prices.taken, prices.source
    return table, prices.taken, prices.source


def _known(lead: str, amount: float, unit: str, prices: ModelPrices, *names: str) -> Estimate:
    """``lead`` ends inside an open parenthesis, which the figures' basis closes."""
    words, taken, source = _basis(prices, *names)
    separator = "" if lead.endswith("(") else "; "
    return Estimate(amount, unit, f"{lead}{separator}{words}).", taken, source)


def _unknown(what: str, prices: ModelPrices, name: str, unit: str) -> Estimate:
    """No amount: which figure of which model is missing, and the ``-c prices`` that sets it."""
    words, taken, source = _basis(prices, name)
    if name.startswith(PT_FIELD):
        term = name.split(".", 1)[1]
        figure = f"Provisioned Throughput price per model unit-hour ({_COMMITMENT_WORDS[term]})"
        example = f'{{"{PT_FIELD}": {{"{term}": <USD>}}}}'
    else:
        figure = _DESCRIPTIONS[name]
        example = f'{{"{name}": <USD>}}'
    model = prices.model_id or "<model id>"
    return Estimate(
        None,
        unit,
        f"No estimate of {what}: the {figure} of {model} is not published in the sources read "
        f"({words}); set it with -c prices='{{\"{model}\": {example}}}'.",
        taken,
        source,
    )


def _term(commitment: str | None) -> str:
    term = "none" if commitment is None else commitment
    if term not in COMMITMENTS:
        raise ValueError(f"commitment = {commitment!r}: must be None or one of {', '.join(COMMITMENTS)}")
    return term


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} = {value!r}: must be a non-negative integer")


def _usd(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PriceError(f"{path} = {value!r}: must be a non-negative number of US dollars")
    return float(value)
