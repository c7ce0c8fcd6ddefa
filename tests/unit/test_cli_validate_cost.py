"""``finetune validate`` estimates the training cost of the data it checked, as an estimate with its basis."""

from __future__ import annotations

import json

import pytest

from bedrock_finetune.catalog import CLAUDE_3_HAIKU
from bedrock_finetune.pricing import PRICE_TABLE_DATE
from finetune.main import main
from tests.unit.dataset_builders import valid_lines, write_jsonl


@pytest.fixture(autouse=True)
def outside_the_repository(tmp_path, monkeypatch):
    """Run from a folder without cdk.json, so results do not depend on the repository's config."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def train(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", valid_lines(40))


def test_without_a_published_price_the_summary_says_there_is_no_estimate_and_why(train, capsys):
    # Given no deployment config: the built-in table, which has no Claude 3 Haiku training price
    # When the data is validated
    assert main(["validate", str(train)]) == 0
    out = capsys.readouterr().out
    # Then the summary prints no amount, says the figure is not published and how to set it
    assert "No estimate of the training cost: the training price per 1,000 tokens" in out
    assert f"is not published in the sources read (price table of {PRICE_TABLE_DATE}" in out
    assert "-c prices=" in out
    assert "$" not in out


def test_the_json_report_carries_the_estimate_with_no_amount(train, capsys):
    assert main(["validate", str(train), "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)["estimated_training_cost"]
    assert cost["amount"] is None
    assert cost["unit"] == "USD"
    assert cost["taken"] == PRICE_TABLE_DATE
    assert "not published" in cost["text"]


def test_a_price_in_the_deployments_cdk_json_gives_tokens_times_epochs_times_price(tmp_path, train, capsys):
    # Given a deployment that sets Claude 3 Haiku's training price and trains 3 epochs
    context = {
        "hyperparameters": {"epochCount": 3},
        "prices": {CLAUDE_3_HAIKU: {"training_per_1k_tokens": 0.5}},
    }
    config = tmp_path / "cdk.json"
    config.write_text(json.dumps({"context": context}))
    # When the data is validated against it
    assert main(["validate", str(train), "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Then the estimate is the training tokens x 3 epochs x $0.50 per 1,000, said to be configured
    tokens = report["statistics"]["train"]["estimated_tokens_total"]
    cost = report["estimated_training_cost"]
    assert cost["amount"] == pytest.approx(tokens * 3 * 0.5 / 1000)
    assert cost["amount"] == pytest.approx(report["estimated_billable_tokens"] * 0.5 / 1000)
    assert cost["text"].startswith("Training cost estimate: $")
    assert "configured under the prices key" in cost["text"]
    # And the readable summary prints the same sentence
    assert main(["validate", str(train), "--config", str(config)]) == 0
    assert cost["text"] in capsys.readouterr().out
