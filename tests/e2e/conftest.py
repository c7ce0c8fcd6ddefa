"""End-to-end fixtures: the app synthesized once per session, run folders, a run in the emulation."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetune.local.cloud import LocalCloud
from finetune.local.runner import LocalRun, follow_delivery, started_execution, upload_run
from finetune.local.scenarios import scenario
from finetune.local.template import Synthesized, synthesize
from finetune.local.timing import Clock

TRAIN_RECORDS = 40
VALIDATION_RECORDS = 10


def _record(i: int) -> dict[str, object]:
    city = ["Lisbon", "Osaka", "Quito", "Tallinn", "Nairobi"][i % 5]
    return {
        "system": "Reply with one JSON object.",
        "messages": [
            {
                "role": "user",
                "content": f"Order {i}: {i % 7 + 1} crates to {city}, ship in week {i % 50 + 1}.",
            },
            {
                "role": "assistant",
                "content": json.dumps({"order": i, "crates": i % 7 + 1, "city": city, "week": i % 50 + 1}),
            },
        ],
    }


def write_run(folder: Path, *, train: int = TRAIN_RECORDS, validation: int = VALIDATION_RECORDS) -> Path:
    """A valid run folder: train.jsonl, validation.jsonl and hyperparameters.json."""
    folder.mkdir(parents=True)
    lines = [json.dumps(_record(i)) for i in range(train + validation)]
    (folder / "train.jsonl").write_text("\n".join(lines[:train]) + "\n")
    (folder / "validation.jsonl").write_text("\n".join(lines[train:]) + "\n")
    (folder / "hyperparameters.json").write_text(json.dumps({"epochCount": 2, "batchSize": 8}))
    return folder


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The CDK app, synthesized once for the whole session (with cdk-nag, as `cdk synth` does)."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    return write_run(tmp_path / "orders-v1")


@pytest.fixture
def invalid_run_folder(tmp_path: Path) -> Path:
    folder = write_run(tmp_path / "orders-bad")
    lines = (folder / "train.jsonl").read_text().splitlines()
    lines[2] = '{"messages": [{"role": "assistant", "content": "no user turn"}]}'
    lines[5] = "this is not JSON"
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@contextlib.contextmanager
def run_in_emulation(
    synth: Synthesized, run_dir: Path, scenario_name: str
) -> Iterator[tuple[LocalRun, LocalCloud]]:
    """Deploy, upload ``run_dir`` (train.jsonl last), follow the execution; the emulation stays up
    while the caller inspects it. Waits take no real time (scale 0)."""
    cloud = LocalCloud(synth, scenario(scenario_name), clock=Clock(scale=0))
    with cloud.in_process() as deployment:
        upload_run(cloud, deployment, run_dir, run_dir.name)
        result = follow_delivery(cloud, deployment, started_execution(cloud), io.StringIO())
        yield result, cloud
