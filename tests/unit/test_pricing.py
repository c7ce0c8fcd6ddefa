"""Price estimates: the arithmetic, the figures nobody published, and the ``prices`` overrides."""

from __future__ import annotations

import json

import pytest

from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU, NOVA_LITE
from bedrock_finetune.pricing import (
    COMMITMENTS,
    HOURS_PER_MONTH,
    PRICE_TABLE_DATE,
    PRICING_PAGE,
    ModelPrices,
    PriceError,
    format_usd,
    on_demand_estimate,
    parse_price_overrides,
    prices_for,
    storage_estimate,
    throughput_estimate,
    training_estimate,
)

KNOWN = ModelPrices(
    model_id="test.model",
    training_per_1k_tokens=0.004,
    storage_per_month=1.95,
    pt_per_unit_hour={"none": 20.0, "OneMonth": 18.0, "SixMonths": 10.0},
    on_demand_input_per_1k=0.001,
    on_demand_output_per_1k=0.004,
    source="https://example.com/prices",
    taken="2026-01-31",
)


# ---- arithmetic on known figures ----


def test_training_cost_is_tokens_times_epochs_times_the_price_per_thousand() -> None:
    # Given 15,000 training tokens, 2 epochs and $0.004 per 1,000 tokens
    # When the training cost is estimated
    estimate = training_estimate(15_000, 2, KNOWN)
    # Then it is 15,000 x 2 x 0.004 / 1,000 = $0.12, labelled as an estimate with its table's date
    assert estimate.amount == pytest.approx(0.12)
    assert estimate.unit == "USD"
    assert estimate.text.startswith(
        "Training cost estimate: $0.12 (15,000 tokens x 2 epochs x $0.004 per 1,000"
    )
    assert "price table of 2026-01-31, https://example.com/prices" in estimate.text
    assert (estimate.taken, estimate.source) == ("2026-01-31", "https://example.com/prices")


@pytest.mark.parametrize(
    ("commitment", "hourly"),
    [(None, 40.0), ("none", 40.0), ("OneMonth", 36.0), ("SixMonths", 20.0)],
)
def test_throughput_is_units_times_the_rate_of_the_term_and_730_hours_a_month(
    commitment: str | None, hourly: float
) -> None:
    # Given 2 model units of a model whose rate depends on the commitment term
    # When the throughput is estimated
    estimates = throughput_estimate(KNOWN, 2, commitment)
    # Then it bills 2 x the term's rate an hour, and 730 times that a month, saying so
    assert estimates["per_hour"].amount == pytest.approx(hourly)
    assert estimates["per_hour"].unit == "USD/hour"
    assert estimates["per_month"].amount == pytest.approx(hourly * HOURS_PER_MONTH)
    assert estimates["per_month"].unit == "USD/month"
    assert f"{HOURS_PER_MONTH} hours a month" in estimates["per_month"].text
    assert "estimate" in estimates["per_hour"].text and "2026-01-31" in estimates["per_hour"].text


def test_on_demand_cost_adds_input_and_output_tokens_at_their_prices() -> None:
    # 1,000,000 x 0.001 / 1,000 + 200,000 x 0.004 / 1,000 = 1.00 + 0.80
    estimate = on_demand_estimate(KNOWN, 1_000_000, 200_000)
    assert estimate.amount == pytest.approx(1.80)
    assert estimate.text.startswith(
        "On-demand inference estimate: $1.80 for 1,000,000 input and 200,000 output"
    )


def test_storage_is_the_monthly_price_of_one_custom_model() -> None:
    estimate = storage_estimate(KNOWN)
    assert (estimate.amount, estimate.unit) == (1.95, "USD/month")
    assert "estimate: $1.95 per month" in estimate.text


def test_an_estimate_is_json_ready() -> None:
    data = json.loads(json.dumps(training_estimate(1000, 1, KNOWN).to_dict()))
    assert data["amount"] == pytest.approx(0.004)
    assert set(data) == {"amount", "unit", "text", "taken", "source"}


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0, "$0.00"), (0.12, "$0.12"), (1234.567, "$1,234.57"), (0.0042, "$0.0042"), (0.000035, "$0.000035")],
)
def test_dollar_amounts_keep_the_digits_that_matter(amount: float, text: str) -> None:
    assert format_usd(amount) == text


@pytest.mark.parametrize(
    "call",
    [
        lambda: training_estimate(-1, 2, KNOWN),
        lambda: training_estimate(10, True, KNOWN),  # type: ignore[arg-type]
        lambda: throughput_estimate(KNOWN, 0, None),
        lambda: throughput_estimate(KNOWN, 1, "OneYear"),
        lambda: on_demand_estimate(KNOWN, 1, -5),
    ],
)
def test_impossible_quantities_are_rejected(call) -> None:
    with pytest.raises(ValueError, match="must be"):
        call()


# ---- figures not published ----


def test_every_catalog_model_has_a_dated_entry_without_invented_figures() -> None:
    # Given the built-in table: the pricing page copies read show no customization figure
    for model_id in BUILTIN_MODELS:
        # When a catalog model's prices are read
        prices = prices_for(model_id)
        # Then every figure is None, and the entry says where it looked and when
        assert prices.training_per_1k_tokens is None
        assert prices.storage_per_month is None
        assert dict(prices.pt_per_unit_hour) == dict.fromkeys(COMMITMENTS)
        assert prices.on_demand_input_per_1k is None and prices.on_demand_output_per_1k is None
        assert (prices.source, prices.taken) == (PRICING_PAGE, PRICE_TABLE_DATE)
        assert BUILTIN_MODELS[model_id].display_name in prices.notes


def test_a_figure_not_published_gives_no_amount_and_says_how_to_set_it() -> None:
    # Given Claude 3 Haiku's built-in prices, which have no training figure
    prices = prices_for(CLAUDE_3_HAIKU)
    # When its training cost is estimated
    estimate = training_estimate(30_000, 2, prices)
    # Then there is no amount, and the text says the figure is not published and how to set it
    assert estimate.amount is None
    assert estimate.text.startswith("No estimate of the training cost: the training price per 1,000 tokens")
    assert "is not published in the sources read" in estimate.text
    assert f"price table of {PRICE_TABLE_DATE}" in estimate.text
    assert f'-c prices=\'{{"{CLAUDE_3_HAIKU}": {{"training_per_1k_tokens": <USD>}}}}\'' in estimate.text


def test_missing_throughput_and_on_demand_figures_give_no_amounts() -> None:
    prices = prices_for(NOVA_LITE)
    throughput = throughput_estimate(prices, 1, "SixMonths")
    assert throughput["per_hour"].amount is None and throughput["per_month"].amount is None
    assert '{"pt_per_unit_hour": {"SixMonths": <USD>}}' in throughput["per_month"].text
    assert on_demand_estimate(prices, 10, 10).amount is None
    assert storage_estimate(prices).amount is None
    assert format_usd(None) == "no figure"


def test_a_model_outside_the_table_has_no_figures_until_configured() -> None:
    prices = prices_for("anthropic.claude-next-v1:0")
    assert prices.model_id == "anthropic.claude-next-v1:0"
    assert training_estimate(10, 1, prices).amount is None


# ---- overrides from the prices key ----


def test_overrides_set_figures_and_the_estimate_says_they_are_configured() -> None:
    # Given a prices entry for Nova Lite with a training price and a no-commitment PT rate
    overrides = {NOVA_LITE: {"training_per_1k_tokens": 0.002, "pt_per_unit_hour": {"none": 25}}}
    # When its prices are read
    prices = prices_for(NOVA_LITE, overrides)
    # Then those figures are set, the rest stays unknown, and estimates say where figures came from
    assert prices.training_per_1k_tokens == 0.002
    assert prices.pt_for(None) == 25.0
    assert prices.pt_for("OneMonth") is None
    assert prices.storage_per_month is None
    assert prices.configured == {"training_per_1k_tokens", "pt_per_unit_hour.none"}
    training = training_estimate(1000, 3, prices)
    assert training.amount == pytest.approx(0.006)
    assert training.text.endswith(
        "(1,000 tokens x 3 epochs x $0.002 per 1,000 tokens; configured under the prices key)."
    )
    assert training.taken is None
    assert throughput_estimate(prices, 1, None)["per_month"].amount == pytest.approx(25 * HOURS_PER_MONTH)
    # And another model's entry leaves Nova Lite alone
    assert prices_for(CLAUDE_3_HAIKU, overrides) == prices_for(CLAUDE_3_HAIKU)


def test_prices_survive_a_round_trip_through_json() -> None:
    prices = prices_for(
        NOVA_LITE, {NOVA_LITE: {"storage_per_month": 1.95, "pt_per_unit_hour": {"OneMonth": 9}}}
    )
    assert ModelPrices.from_dict(json.loads(json.dumps(prices.to_dict()))) == prices


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("0.002", "prices = '0.002': must be a JSON object of model id -> {field: USD}"),
        ({NOVA_LITE: 0.002}, f"prices.{NOVA_LITE} = 0.002: must be an object of field -> USD"),
        (
            {NOVA_LITE: {"training": 1}},
            f"prices.{NOVA_LITE}: unknown field(s) training; allowed: training_per_1k",
        ),
        (
            {NOVA_LITE: {"storage_per_month": -1}},
            f"prices.{NOVA_LITE}.storage_per_month = -1: must be a non-negative number of US dollars",
        ),
        (
            {NOVA_LITE: {"training_per_1k_tokens": "cheap"}},
            f"prices.{NOVA_LITE}.training_per_1k_tokens = 'cheap': must be a non-negative number",
        ),
        ({NOVA_LITE: {"storage_per_month": True}}, f"prices.{NOVA_LITE}.storage_per_month = True: must be"),
        (
            {NOVA_LITE: {"pt_per_unit_hour": {"OneYear": 3}}},
            f"prices.{NOVA_LITE}.pt_per_unit_hour = {{'OneYear': 3}}: must be an object of commitment term",
        ),
        (
            {NOVA_LITE: {"pt_per_unit_hour": {"none": float("nan")}}},
            f"prices.{NOVA_LITE}.pt_per_unit_hour.none = nan: must be a non-negative number",
        ),
    ],
)
def test_bad_overrides_name_the_key_model_and_field(overrides: object, message: str) -> None:
    with pytest.raises(PriceError) as caught:
        prices_for(NOVA_LITE, overrides)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_overrides_may_name_only_known_models_when_the_models_are_given() -> None:
    with pytest.raises(
        PriceError, match=r"prices: 'amazon.nova-nano' is not a model in the catalog or under models"
    ):
        parse_price_overrides(
            {"amazon.nova-nano": {"storage_per_month": 1}}, known_models=set(BUILTIN_MODELS)
        )
    assert parse_price_overrides({NOVA_LITE: {"storage_per_month": 2}}, known_models=set(BUILTIN_MODELS)) == {
        NOVA_LITE: {"storage_per_month": 2.0}
    }
