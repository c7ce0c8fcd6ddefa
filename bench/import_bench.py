"""Benchmark of the handlers' cold import (``make bench``): each against boto3's, same environment.

For each module of ``lambdas/handlers/`` (not ``__init__`` or private ones), times
``python -c "import handlers.X"`` in a fresh process, with ``PYTHONPATH=lambdas`` and the
environment Lambda gives the function: the runtime's variables (region, function name,
``LAMBDA_TASK_ROOT``, X-Ray daemon address, credentials) plus the function's own
``Environment.Variables`` from the synthesized template in ``cdk.out`` (``make synth``; CloudFormation
references become placeholders). Without a template only the runtime's variables are set (the
output says so). ``make bench`` synthesizes into ``cdk.out`` first. The baseline is
``python -c "import boto3; boto3.client('s3')"`` in the same environment. Each command runs once
to warm the bytecode and page caches, then ``--runs`` times (default 7), interleaved, and the
median counts. Goal: every handler at most 1.3x the baseline.

Whole-process wall time, measured here; nothing is hard-coded. The exit status is 1 when a goal is
missed (or an import fails) only with ``--strict``; an import that fails is always reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = ROOT / "lambdas"
RATIO_GOAL = 1.3
BASELINE = "import boto3; boto3.client('s3')"
REGION = "us-west-2"


def handler_modules() -> list[str]:
    """``handlers.X`` for every public module of the handlers package."""
    modules = (LAMBDAS / "handlers").glob("*.py")
    return sorted(f"handlers.{path.stem}" for path in modules if not path.stem.startswith("_"))


def lambda_runtime_environment(function_name: str) -> dict[str, str]:
    """What the Lambda Python runtime sets for every function (credentials are fake, never used)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(LAMBDAS),
        "LAMBDA_TASK_ROOT": str(LAMBDAS),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
        "AWS_ACCESS_KEY_ID": "ASIABENCHMARKONLY000",
        "AWS_SECRET_ACCESS_KEY": "bench-only-not-a-secret",  # a placeholder, never sent
        "AWS_SESSION_TOKEN": "bench-only",
        # Keep the developer's own AWS configuration out of the measurement.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _placeholder(value: Any) -> str:
    """A template value as a string: CloudFormation references become readable placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), *_ = value.items()
        if function == "Ref":
            return f"bench-{argument}"
        if function == "Fn::GetAtt":
            return f"bench-{'.'.join(argument) if isinstance(argument, list) else argument}"
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_placeholder(part) for part in parts)
    return json.dumps(value)


def template_environments(outdir: Path) -> dict[str, dict[str, str]]:
    """``handlers.X`` -> the first function's ``Environment.Variables`` among the templates in ``outdir``."""
    found: dict[str, dict[str, str]] = {}
    for template_file in sorted(outdir.glob("*.template.json")):
        resources = json.loads(template_file.read_text()).get("Resources", {})
        for resource in resources.values():
            properties = resource.get("Properties", {})
            handler = properties.get("Handler")
            if resource.get("Type") != "AWS::Lambda::Function" or not isinstance(handler, str):
                continue
            module = handler.rsplit(".", 1)[0]
            if module.startswith("handlers.") and module not in found:
                variables = properties.get("Environment", {}).get("Variables", {})
                found[module] = {name: _placeholder(value) for name, value in variables.items()}
    return found


def run_seconds(code: str, env: dict[str, str]) -> float:
    """Wall time of a fresh ``python -c code``; raises with its stderr when it fails."""
    start = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], env=env, cwd=LAMBDAS, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command; the median counts")
    parser.add_argument(
        "--cdk-out", type=Path, default=ROOT / "cdk.out", help="synthesized templates (default: cdk.out)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    environments = template_environments(args.cdk_out) if args.cdk_out.is_dir() else {}
    source = (
        f"from the templates in {args.cdk_out}"
        if environments
        else f"none (no template in {args.cdk_out}: run make synth), only the runtime's variables"
    )
    commands: dict[str, tuple[str, dict[str, str]]] = {
        "baseline": (BASELINE, lambda_runtime_environment("import-bench-baseline"))
    }
    for module in handler_modules():
        function_env = environments.get(module, {})
        name = module.removeprefix("handlers.").replace("_", "-")
        commands[module] = (f"import {module}", {**lambda_runtime_environment(name), **function_env})

    print(f"Cold imports, {args.runs} runs of each, interleaved; function variables: {source}", flush=True)
    failed: dict[str, str] = {}
    for name, (code, env) in commands.items():  # warm-up: bytecode compiled, files cached
        try:
            run_seconds(code, env)
        except RuntimeError as exc:
            failed[name] = str(exc)
    if "baseline" in failed:
        print(f"baseline failed: {failed['baseline']}", file=sys.stderr)
        return 1
    times: dict[str, list[float]] = {name: [] for name in commands if name not in failed}
    for run in range(args.runs):
        names = list(times)
        shift = run % len(names)  # rotate the order, so load changes spread over every command
        for name in names[shift:] + names[:shift]:
            times[name].append(run_seconds(*commands[name]))

    baseline = statistics.median(times["baseline"])
    print(f"\n{'module':<45}{'median ms':>10}{'ratio':>8}")
    print(f"{BASELINE:<45}{baseline * 1000:>10.0f}{1:>8.2f}")
    missed = 0
    for name in commands:
        if name == "baseline":
            continue
        if name in failed:
            missed += 1
            print(f"{name:<45}{'import failed: ' + failed[name]}")
            continue
        median = statistics.median(times[name])
        ratio = median / baseline
        ok = ratio <= RATIO_GOAL
        missed += not ok
        print(f"{name:<45}{median * 1000:>10.0f}{ratio:>8.2f}  {'PASS' if ok else 'MISS'}")
    print(f"goal: every handler <= {RATIO_GOAL}x the baseline; {missed} missed")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
