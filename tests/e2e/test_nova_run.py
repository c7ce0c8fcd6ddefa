"""The Nova sample run end to end: `-c base_model_id=amazon.nova-lite-v1:0:300k` moves the stack to
us-east-1, the validator speaks the Nova format, and the job trains on Nova Lite."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from bedrock_finetune.catalog import NOVA_LITE
from finetune.local.runner import run_local
from finetune.local.scenarios import scenario
from finetune.local.template import synthesize
from tests.e2e.conftest import run_in_emulation

pytestmark = pytest.mark.e2e

NOVA_SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode-nova"
CLAUDE_SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"


@pytest.fixture(scope="module")
def nova_synthesized(tmp_path_factory: pytest.TempPathFactory):
    return synthesize(tmp_path_factory.mktemp("cdk.out.nova"), base_model_id=NOVA_LITE)


def test_the_nova_sample_trains_on_nova_lite_in_us_east_1(nova_synthesized) -> None:
    assert nova_synthesized.region == "us-east-1"
    with run_in_emulation(nova_synthesized, NOVA_SAMPLE, "ok") as (result, cloud):
        assert result.status == "SUCCEEDED", result.cause
        assert result.validation_report is not None and result.validation_report["valid"]
        assert result.validation_report["model"] == NOVA_LITE
        [job] = cloud.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"]
        details = cloud.client("bedrock").get_model_customization_job(jobIdentifier=job["jobArn"])
        assert details["baseModelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{NOVA_LITE}"
        assert details["hyperParameters"] == {
            "epochCount": "2",
            "learningRate": "1e-05",
            "learningRateWarmupSteps": "1",
        }


def test_claude_records_uploaded_for_nova_stop_at_validation_with_the_convert_command(
    nova_synthesized, tmp_path: Path
) -> None:
    run_dir = tmp_path / "json-mode"
    shutil.copytree(CLAUDE_SAMPLE, run_dir)
    (run_dir / "hyperparameters.json").unlink()
    with run_in_emulation(nova_synthesized, run_dir, "ok") as (result, _):
        assert result.status == "FAILED"
        report = result.validation_report
        assert report is not None and not report["valid"]
        wrong = [e for e in report["errors"] if e["code"] == "WRONG_FORMAT"]
        assert {e["file"] for e in wrong} == {"train", "validation"}
        assert report["errors"][: len(wrong)] == wrong  # listed first
        train = next(e for e in wrong if e["file"] == "train")
        assert f"finetune convert train.jsonl train.converted.jsonl --model {NOVA_LITE}" in train["message"]


def test_finetune_local_takes_context(tmp_path: Path) -> None:
    out = io.StringIO()
    result = run_local(NOVA_SAMPLE, scenario("ok"), out, time_scale=0, context={"base_model_id": NOVA_LITE})
    assert result.succeeded, out.getvalue()[-2000:]
    assert result.deployment.region == "us-east-1"
    assert json.dumps(result.validation_report["model"]) == json.dumps(NOVA_LITE)
