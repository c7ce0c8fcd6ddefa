"""Benchmark of the dataset validator (``make bench``).

1. Generates a training file of 10,000 conversations of mixed sizes (about 100 MB) in a
   temporary directory, then measures, in the same run, the validator's throughput and the time
   of plain ``json.loads`` over every line of the same file. Goal: validator / json.loads
   throughput ratio of at least 0.7.
2. Generates a file of about 1 GB and validates it in a child process, reading the child's peak
   RSS with ``getrusage(RUSAGE_CHILDREN)``. Goal: under 256 MB.

Every figure is measured; nothing is hard-coded. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bedrock_finetune.catalog import CLAUDE_3_HAIKU, resolve_model
from bedrock_finetune.dataset import LocalFile, validate_run

RATIO_GOAL = 0.7
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
        return rng.randint(300, 4_000)
    if pick < 0.9:
        return rng.randint(4_000, 25_000)
    return rng.randint(25_000, 85_000)


def generate(path: Path, records: int, seed: int = 7) -> int:
    """Write ``records`` distinct, valid conversations to ``path``; return the file size."""
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
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
    return path.stat().st_size


def time_json_loads(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as stream:
        for line in stream:
            json.loads(line)
    return time.perf_counter() - start


def time_validator(path: Path) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    report = validate_run(LocalFile(path), None, None, resolve_model(CLAUDE_3_HAIKU))
    return time.perf_counter() - start, report.summary()


def child(path: str) -> int:
    """Validate ``path`` and print the summary: the process whose peak RSS is measured."""
    _, summary = time_validator(Path(path))
    print(json.dumps({k: summary[k] for k in ("valid", "error_counts", "warning_counts")}))
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
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best one counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    failures = 0
    with tempfile.TemporaryDirectory(prefix="validator-bench-") as tmp:
        train = Path(tmp) / "train.jsonl"
        print(f"Generating {args.records:,} mixed-size records ...", flush=True)
        size = generate(train, args.records)
        time_json_loads(train)  # warm the page cache so both sides read from memory
        best_json = best_validator = float("inf")
        summary: dict[str, object] = {}
        for _ in range(args.repeat):
            best_json = min(best_json, time_json_loads(train))
            elapsed, summary = time_validator(train)
            best_validator = min(best_validator, elapsed)
        ratio = best_json / best_validator
        print(f"\nThroughput file: {size / MB:,.1f} MB, {args.records:,} records")
        print(f"  json.loads of every line : {size / MB / best_json:8.1f} MB/s ({best_json:.2f} s)")
        print(f"  validator                : {size / MB / best_validator:8.1f} MB/s ({best_validator:.2f} s)")
        ok = ratio >= RATIO_GOAL
        failures += not ok
        print(f"  ratio validator/json     : {ratio:8.2f}   goal >= {RATIO_GOAL}  {'PASS' if ok else 'FAIL'}")
        print(f"  report: valid={summary['valid']} warnings={summary['warning_counts']}")
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
