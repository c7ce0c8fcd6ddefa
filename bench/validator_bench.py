"""Benchmark of the dataset validator (``make bench``).

1. For each record format (Claude 3 Haiku's, and bedrock-conversation-2024 for Nova Lite),
   generates a valid training file of 10,000 conversations of mixed sizes (about 70 MB) in a
   temporary directory, then times, in the same run, two whole processes on it: ``finetune
   validate FILE --model MODEL`` and a Python process that only ``json.loads`` every line. Each
   runs once to warm the page and bytecode caches, then ``--runs`` times (default 9) in pairs
   that alternate which goes first; the medians count, so one run slowed by other work on the
   machine does not decide. Goal: median json.loads time / median validate time of at least
   1.0 (the validator is at least as fast). The CPU time of both (user + system) and the load
   average are printed too: on a busy machine wall times stretch, CPU times much less.
2. Generates a file of about 1 GB and validates it in a child process, reading the child's peak
   RSS with ``getrusage(RUSAGE_CHILDREN)``. Goal: under 256 MB. The child validates for Claude 3
   Haiku with record limits raised to admit the whole file: with the real ones, reading stops
   after twice the maximum records in lines (``TOO_MANY_LINES``), long before 1 GB.

Every figure is measured; nothing is hard-coded. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bedrock_finetune.catalog import CLAUDE_3_HAIKU, NOVA_LITE, ModelSpec, resolve_model
from bedrock_finetune.dataset import LocalFile, _fast_loads, _typed_decoders, validate_run
from bedrock_finetune.formats import convert_record

RATIO_GOAL = 1.0
RSS_GOAL_MB = 256
MB = 1_000_000

_WORDS = (  # noqa: SIM905 - prose is easier to read than a list of words
    "the model answers questions about invoices shipping orders refunds and accounts with short "
    "clear sentences because customers prefer direct replies that cite the relevant policy and "
    "explain the next step a support agent would take when the order is late or damaged"
).split()
# A few non-ASCII words, as real data has: accented Latin (2-byte UTF-8), CJK (3), emoji (4).
_RARE_WORDS = ["café", "naïve", "Zürich", "東京", "データ", "🙂", "—", "€"]


def _corpus(seed: int, size: int = 4_000_000) -> str:
    """A few MB of word salad with line breaks; records are random slices of it."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_RARE_WORDS) if rng.random() < 0.02 else rng.choice(_WORDS)
        if rng.random() < 0.05:
            word += ".\n" if rng.random() < 0.5 else "."
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _record_chars(rng: random.Random) -> int:
    """Mixed sizes: mostly short conversations, some long ones, a few near the token limit."""
    pick = rng.random()
    if pick < 0.6:
        return rng.randint(200, 2_400)
    if pick < 0.9:
        return rng.randint(2_400, 15_000)
    return rng.randint(15_000, 51_000)


def generate(path: Path, records: int, seed: int = 7, model_id: str = CLAUDE_3_HAIKU) -> int:
    """Write ``records`` distinct, valid conversations for ``model_id`` to ``path``; return the size."""
    model = resolve_model(model_id)
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    corpus = _corpus(seed)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for number in range(records):
            total = _record_chars(rng)
            turns = rng.choice((1, 1, 2, 3, 4))
            messages = []
            for turn in range(turns * 2):
                share = total // (turns * 2)
                start = rng.randrange(0, len(corpus) - share - 1)
                text = corpus[start : start + share].strip() or "ok"
                if turn == 0:
                    text = f"[{number}] {text}"  # every record distinct
                messages.append({"role": "user" if turn % 2 == 0 else "assistant", "content": text})
            record: dict[str, object] = {"messages": messages}
            if rng.random() < 0.5:
                record = {"system": "You are a concise, friendly support agent.", **record}
            if model.data_format != "claude-messages":
                record, _ = convert_record(record, model.data_format, model)
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
    return path.stat().st_size


_JSON_LOADS_ONLY = """
import json, sys
with open(sys.argv[1], "rb") as stream:
    for line in stream:
        json.loads(line)
"""


#: Both processes run as after a normal install: Python caches the bytecode of what it imports
#: (PYTHONDONTWRITEBYTECODE, set in some sandboxes, would recompile the CLI at every start).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall time and CPU time (user + system) of a whole process, and its result."""
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=_ENV)  # noqa: S603 - our own interpreter
    return time.perf_counter() - start, _children_cpu() - cpu, result


def time_json_loads(path: Path) -> tuple[float, float]:
    """A whole Python process that only json.loads every line: (wall, CPU) seconds."""
    wall, cpu, _ = _timed([sys.executable, "-c", _JSON_LOADS_ONLY, str(path)])
    return wall, cpu


def time_validate_command(path: Path, model_id: str) -> tuple[float, float]:
    """A whole ``finetune validate`` process (the installed CLI's entry point), checked to say VALID:
    (wall, CPU) seconds."""
    command = [sys.executable, "-m", "finetune.main", "validate", str(path), "--model", model_id]
    wall, cpu, result = _timed(command)
    if result.returncode != 0:
        raise SystemExit(
            f"finetune validate did not say valid:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return wall, cpu


def alternating_runs(path: Path, model_id: str, runs: int) -> tuple[list[tuple[float, float]], ...]:
    """``runs`` pairs of (json.loads, validate) timings, alternating which of the two goes first."""
    loads: list[tuple[float, float]] = []
    validate: list[tuple[float, float]] = []
    for run in range(runs):
        if run % 2:
            validate.append(time_validate_command(path, model_id))
            loads.append(time_json_loads(path))
        else:
            loads.append(time_json_loads(path))
            validate.append(time_validate_command(path, model_id))
    return loads, validate


def _median(timings: list[tuple[float, float]], which: int) -> float:
    return statistics.median(timing[which] for timing in timings)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


#: Records the memory child's model admits, so that it reads the whole 1 GB file.
ADMITTED_RECORDS = 10_000_000


def _admitting_every_record(model: ModelSpec) -> ModelSpec:
    limits = replace(model.limits, max_train_records=ADMITTED_RECORDS, max_total_records=ADMITTED_RECORDS)
    return replace(model, limits=limits)


def time_validator(path: Path) -> tuple[float, dict[str, object]]:
    model = _admitting_every_record(resolve_model(CLAUDE_3_HAIKU))
    start = time.perf_counter()
    report = validate_run(LocalFile(path), None, None, model)
    return time.perf_counter() - start, {**report.summary(), "records": report.train.records}


def child(path: str) -> int:
    """Validate ``path`` and print the summary: the process whose peak RSS is measured."""
    _, summary = time_validator(Path(path))
    keys = ("valid", "error_counts", "warning_counts", "records")
    print(json.dumps({k: summary[k] for k in keys}))
    return 0


def _maxrss_mb(value: int) -> float:
    # Linux reports kilobytes, macOS bytes.
    return value / MB if sys.platform == "darwin" else value * 1024 / MB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000, help="records in the throughput file")
    parser.add_argument("--big-mb", type=int, default=1_000, help="size of the memory-test file (MB)")
    parser.add_argument(
        "--runs",
        type=int,
        default=9,
        help="timed pairs per format, alternating which goes first; medians count",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    failures = 0
    with tempfile.TemporaryDirectory(prefix="validator-bench-") as tmp:
        paths = [
            name for name, present in (("msgspec typed", _typed_decoders), ("orjson", _fast_loads)) if present
        ]
        parser_name = " + ".join([*paths, "standard library"])
        print(f"Validator parser: {parser_name}")
        print(f"Machine: {_load()}")
        size = 0
        for model_id in (CLAUDE_3_HAIKU, NOVA_LITE):
            train = Path(tmp) / "train.jsonl"
            print(f"\nGenerating {args.records:,} mixed-size records for {model_id} ...", flush=True)
            size = generate(train, args.records, model_id=model_id)
            time_json_loads(train)  # warm the page cache so both sides read from memory
            time_validate_command(train, model_id)  # and the bytecode cache of the CLI
            loads, validate = alternating_runs(train, model_id, args.runs)
            json_wall, validate_wall = _median(loads, 0), _median(validate, 0)
            ratio = json_wall / validate_wall
            pairs = sorted(j[0] / v[0] for j, v in zip(loads, validate, strict=True))
            cpu_ratio = _median(loads, 1) / _median(validate, 1)
            ok = ratio >= RATIO_GOAL
            failures += not ok
            verdict = "PASS" if ok else "FAIL"
            mbps_json, mbps_validate = size / MB / json_wall, size / MB / validate_wall
            print(f"Throughput file: {size / MB:,.1f} MB, {args.records:,} records, valid for {model_id}")
            print(f"  json.loads-only process  : {mbps_json:8.1f} MB/s (median {json_wall:.2f} s)")
            print(f"  finetune validate process: {mbps_validate:8.1f} MB/s (median {validate_wall:.2f} s)")
            print(f"  ratio json/validate      : {ratio:8.2f}   goal >= {RATIO_GOAL}  {verdict}")
            print(f"    median of {args.runs} alternating runs; pairs from {pairs[0]:.2f} to {pairs[-1]:.2f}")
            print(f"  CPU-time ratio           : {cpu_ratio:8.2f}   (user + system: less sensitive to load)")
            print(f"  {_load()}")
            train.unlink()

        big = Path(tmp) / "big.jsonl"
        big_records = max(1, round(args.records * args.big_mb * MB / size))
        print(f"\nGenerating about {args.big_mb:,} MB ({big_records:,} records) ...", flush=True)
        big_size = generate(big, big_records, seed=11)
        start = time.perf_counter()
        result = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, os.path.abspath(__file__), "--child", str(big)],
            check=True,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        rss = _maxrss_mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        ok = rss < RSS_GOAL_MB
        failures += not ok
        print(f"Memory file: {big_size / MB:,.1f} MB, validated in {elapsed:.1f} s in a child process")
        print(
            f"  peak RSS                 : {rss:8.1f} MB   goal < {RSS_GOAL_MB} MB "
            f" {'PASS' if ok else 'FAIL'}"
        )
        print(f"  report: {result.stdout.strip()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
