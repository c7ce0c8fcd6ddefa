"""The Node end-of-life banner jsii prints does not leak from the Python entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import stacks.application", id="app.py and the local emulation (through stacks)"),
        pytest.param("import iam_review.synth", id="python -m iam_review"),
    ],
)
def test_loading_the_cdk_prints_no_node_banner(code: str) -> None:
    # Given an environment without the Makefile's jsii settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSII_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "lambdas"), str(ROOT / "tools")])
    # When an entry point loads the CDK (which starts jsii's Node process)
    result = subprocess.run(
        [sys.executable, "-c", f"{code}; import aws_cdk; aws_cdk.App()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # Then it works and nothing about the Node version reaches the terminal
    assert result.returncode == 0, result.stderr
    assert "end-of-life" not in result.stderr + result.stdout
    assert "!!!!" not in result.stderr
