"""``finetune local-server``: the same emulation, served over HTTP on 127.0.0.1.

moto's ``ThreadedMotoServer`` runs in this process, so the hooks (handlers, Bedrock, EventBridge
delivery, time compression) apply to it exactly as in ``finetune local``. The state machine
interpreter reaches Lambda at ``localhost:$MOTO_PORT``, which ``ThreadedMotoServer`` does not
set, so it is set here; the handlers reach the emulation through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from moto.core.base_backend import BackendDict
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from finetune.local.cloud import Deployment, LocalCloud
from finetune.local.events import Delivery
from finetune.local.runner import follow_delivery, print_summary
from finetune.local.scenarios import Scenario
from finetune.local.synth_cache import synthesize_cached
from finetune.local.template import Synthesized
from finetune.local.timing import SERVER_SCALE, Clock


@contextlib.contextmanager
def serving(
    port: int,
    scenario: Scenario,
    synth: Synthesized,
    *,
    time_scale: float = SERVER_SCALE,
    out: TextIO | None = None,
) -> Iterator[tuple[LocalCloud, Deployment]]:
    """Serve the emulation on 127.0.0.1:``port`` with the stack deployed; follow runs to ``out``."""
    saved_config = copy.deepcopy(default_user_config)
    saved_port = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)
    # One access-log line per request would drown the run's progress.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    # A fresh account, as the in-process emulation has (mock_aws resets at its start): moto's backends
    # belong to the process, and what an earlier emulation left there (a stack of the same name, its
    # training queue with tickets whose runs are gone) must not hold this one's runs.
    BackendDict.reset()
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        cloud = LocalCloud(synth, scenario, clock=Clock(scale=time_scale), endpoint_url=endpoint)
        with cloud.hooks():
            deployment = cloud.deploy()
            if out is not None:
                cloud.router.on_delivery = lambda d: _follow_in_background(cloud, deployment, d, out)
            yield cloud, deployment
    finally:
        server.stop()
        for key, value in saved_config.items():
            default_user_config[key] = value  # type: ignore[literal-required]
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port


def _follow_in_background(cloud: LocalCloud, deployment: Deployment, delivery: Delivery, out: TextIO) -> None:
    if delivery.cause is not None or not delivery.execution_arn:
        return  # not a run: what an execution's end started (a clean-up) is waited for by its run

    def worker() -> None:
        try:
            result = follow_delivery(
                cloud, deployment, delivery, out, settle_all=False, answer_approvals=False
            )
            print_summary(result, out)
        except Exception as exc:  # a follower must never take the server down
            print(f"  (could not follow {delivery.execution_arn}: {exc})", file=out)

    threading.Thread(target=worker, daemon=True).start()


def banner(deployment: Deployment, endpoint: str) -> str:
    """What to do with the server: the bucket and example AWS CLI commands."""
    aws = f"aws --endpoint-url {endpoint} --region {deployment.region}"
    return "\n".join(
        [
            f"Emulated AWS on {endpoint} with stack {deployment.stack_name} deployed.",
            f"  bucket:        {deployment.bucket}",
            f"  state machine: {deployment.state_machine_arn}",
            f"  topic:         {deployment.topic_arn}",
            "",
            "Any credentials work (AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing).",
            "Start a run by uploading train.jsonl (upload validation.jsonl and hyperparameters.json first):",
            f"  {aws} s3 cp datasets/json-mode/validation.jsonl s3://{deployment.bucket}/datasets/json-mode/",
            f"  {aws} s3 cp datasets/json-mode/hyperparameters.json s3://{deployment.bucket}/datasets/json-mode/",
            f"  {aws} s3 cp datasets/json-mode/train.jsonl s3://{deployment.bucket}/datasets/json-mode/",
            "Follow it:",
            f"  {aws} stepfunctions list-executions --state-machine-arn {deployment.state_machine_arn}",
            f"  {aws} stepfunctions describe-execution --execution-arn <executionArn>",
            f"  {aws} s3 cp s3://{deployment.bucket}/reports/json-mode/validation.json -",
            "Progress of each run is printed here. Ctrl-C stops the server.",
        ]
    )


def serve_forever(
    port: int,
    scenario: Scenario,
    *,
    time_scale: float = SERVER_SCALE,
    context: dict[str, str] | None = None,
) -> int:
    """Synthesize (``context`` on top of cdk.json, as ``-c``), serve, print the banner, run until Ctrl-C."""
    out = sys.stdout
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="finetune-local-server-") as outdir:
        synth = synthesize_cached(Path(outdir), **(context or {}))
        how = "Reused the template of" if synth.reused else "Synthesized"
        print(
            f"{how} {synth.stack_name} ({time.time() - started:.1f} s); scenario {scenario.name}.",
            file=out,
        )
        with serving(port, scenario, synth, time_scale=time_scale, out=out) as (_, deployment):
            print(banner(deployment, f"http://127.0.0.1:{port}"), file=out, flush=True)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                print("\nStopped.", file=out)
    return 0
