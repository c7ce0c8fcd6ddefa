"""Benchmark of ``cdk synth`` (``make bench``): the app against a minimal app, same CDK CLI.

Runs ``cdk synth --quiet`` of the app (``app.py``, cdk-nag included, as every synth) and of
``bench/minimal_app/app.py`` (one bucket, one function, one state machine) with the pinned CDK CLI
(``npx --no-install cdk``), each into its own output folder (the app's is ``--app-out``, a
temporary one by default; ``make bench`` uses ``cdk.out`` for the import benchmark). Each app is
synthesized once to warm the caches, then ``--runs`` times (default 3), alternately. Prints each
median and the ratio app / minimal. Goal: at most 1.5x, so the app's
synthesis stays near what any CDK app of this kind costs as the pipeline grows.

Whole-process wall time, measured here; nothing is hard-coded. The exit status is 1 when the goal
is missed only with ``--strict`` (the times depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_APP = ROOT / "bench" / "minimal_app" / "app.py"
RATIO_GOAL = 1.5
CDK = ["npx", "--no-install", "cdk"]


def synth_seconds(app_command: str, outdir: str) -> float:
    """Wall time of one ``cdk synth`` of ``app_command`` into ``outdir``; raises when it fails."""
    command = [*CDK, "synth", "--quiet", "--no-notices", "--app", app_command, "-o", outdir]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="synths of each app; the median counts")
    parser.add_argument("--app-out", metavar="DIR", help="the app's output folder (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)

    python = sys.executable
    apps = {"app": f"{python} app.py", "minimal": f"{python} {MINIMAL_APP.relative_to(ROOT)}"}
    times: dict[str, list[float]] = {name: [] for name in apps}
    os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    print(f"cdk synth, 1 warm-up and {args.runs} runs of each, alternating (a few minutes) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        outdirs = {"app": args.app_out or f"{tmp}/app", "minimal": f"{tmp}/minimal"}
        for name, command in apps.items():  # warm-up, not counted: bytecode, page cache, staged assets
            synth_seconds(command, outdirs[name])
        for run in range(args.runs):
            # Alternate which goes first, so a change in machine load hits both alike.
            order = list(apps) if run % 2 == 0 else list(reversed(apps))
            for name in order:
                times[name].append(synth_seconds(apps[name], outdirs[name]))

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["app"] / medians["minimal"]
    ok = ratio <= RATIO_GOAL
    print(f"\n{'synth':<10}{'median s':>10}  runs")
    for name, values in times.items():
        print(f"{name:<10}{medians[name]:>10.2f}  {', '.join(f'{v:.2f}' for v in values)}")
    print(f"ratio app/minimal: {ratio:.2f}x   goal <= {RATIO_GOAL}x  {'PASS' if ok else 'MISS'}")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
