"""The README's price table says what the built-in price table says (one row per catalog model)."""

from __future__ import annotations

from pathlib import Path

from bedrock_finetune.catalog import BUILTIN_MODELS
from bedrock_finetune.pricing import COMMITMENTS, DEFAULT_PRICES, ModelPrices

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- price-table:start -->", "<!-- price-table:end -->"
NOT_PUBLISHED = "not published"


def usd(value: float | None) -> str:
    return NOT_PUBLISHED if value is None else f"${value:g}"


def row(prices: ModelPrices) -> list[str]:
    spec = BUILTIN_MODELS[prices.model_id]
    pt = [prices.pt_per_unit_hour[term] for term in COMMITMENTS]
    on_demand = [prices.on_demand_input_per_1k, prices.on_demand_output_per_1k]
    return [
        spec.display_name,
        ", ".join(spec.regions),
        usd(prices.training_per_1k_tokens),
        usd(prices.storage_per_month),
        NOT_PUBLISHED if pt == [None] * 3 else " / ".join(map(usd, pt)),
        "does not apply"
        if "on_demand" not in spec.serving_modes
        else NOT_PUBLISHED
        if on_demand == [None, None]
        else " / ".join(map(usd, on_demand)),
        f"[pricing page]({prices.source}), {prices.taken}",
    ]


def readme_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index(START) + len(START) : text.index(END)].strip().splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table[2:]]


def test_the_readme_price_table_matches_the_built_in_table() -> None:
    # Given the built-in price table, When the README's table is read, Then it has the same rows
    assert readme_rows() == [row(prices) for prices in DEFAULT_PRICES.values()]


if __name__ == "__main__":  # print the table to paste into the README
    header = [
        "Model",
        "Region",
        "Training per 1,000 tokens",
        "Storage per month",
        "PT per model unit-hour (none / 1 month / 6 months)",
        "On-demand per 1,000 input / output tokens",
        "Source, date read",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for prices in DEFAULT_PRICES.values():
        print("| " + " | ".join(row(prices)) + " |")
