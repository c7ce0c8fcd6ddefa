"""Benchmark of ``make demo`` (``make bench``): the demo against a minimal app's ``cdk synth``.

Runs what ``make demo`` runs (``finetune local datasets/json-mode``, a whole process) and ``cdk synth
--quiet`` of ``bench/minimal_app/app.py`` (one bucket, one function, one state machine) with the pinned
CDK CLI. The first demo is a warm-up: it synthesizes the app unless a template synthesized from the
same inputs is cached (``finetune/local/synth_cache.py``), as after any first ``make demo``; its time
is printed apart. Then ``--runs`` of each (default 3), alternately. Prints each median and the ratio
demo / minimal synth. Goal: at most 2.5x, so that trying the whole pipeline costs about as much as
synthesizing any CDK app.

Whole-process wall time, measured here; nothing is hard-coded. The exit status is 1 when a run fails,
or with ``--strict`` when the goal is missed (the times depend on the machine and its load).
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

from synth_bench import MINIMAL_APP, ROOT, synth_seconds

RATIO_GOAL = 2.5
DEMO_RUN = ROOT / "datasets" / "json-mode"


def demo_seconds() -> tuple[float, str]:
    """Wall time of one ``finetune local datasets/json-mode`` and how it got its template."""
    finetune = Path(sys.executable).parent / "finetune"
    start = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - the venv's own command
        [str(finetune), "local", str(DEMO_RUN)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"finetune local failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    how = next((line.strip() for line in result.stdout.splitlines() if "synthesized" in line), "?")
    return elapsed, how


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each; the median counts")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)

    os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    minimal_command = f"{sys.executable} {MINIMAL_APP.relative_to(ROOT)}"
    print(
        f"make demo vs minimal cdk synth, 1 warm-up and {args.runs} runs of each, alternating ...", flush=True
    )
    times: dict[str, list[float]] = {"demo": [], "minimal": []}
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        first, how = demo_seconds()
        print(f"first demo: {first:.2f} s ({how})", flush=True)
        synth_seconds(minimal_command, tmp)
        for run in range(args.runs):
            order = ["demo", "minimal"] if run % 2 == 0 else ["minimal", "demo"]
            for name in order:
                if name == "demo":
                    seconds, how = demo_seconds()
                    times["demo"].append(seconds)
                else:
                    times["minimal"].append(synth_seconds(minimal_command, tmp))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["demo"] / medians["minimal"]
    ok = ratio <= RATIO_GOAL
    print(f"\n{'':<10}{'median s':>10}  runs")
    for name, values in times.items():
        print(f"{name:<10}{medians[name]:>10.2f}  {', '.join(f'{v:.2f}' for v in values)}")
    print(f"demo runs: {how}")
    print(f"ratio demo/minimal synth: {ratio:.2f}x   goal <= {RATIO_GOAL}x  {'PASS' if ok else 'MISS'}")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
