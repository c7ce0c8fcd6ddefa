"""Reuse the synthesized template while none of its inputs changed (``make demo``, ``finetune local``).

Synthesis is most of a local run's time (the CDK's Node process and cdk-nag). Its result depends
only on its inputs: the CDK app's code (``app.py``, ``stacks/``), the Lambda asset (``lambdas/``,
whose hash is in the template), ``cdk.json``, the requirement pins and the installed CDK and
cdk-nag versions, this package's synthesis code, and the context given with ``-c``. A SHA-256 of all
of them keys the cache; an entry holds what :class:`~finetune.local.template.Synthesized` holds
(template, asset sources), written only after a synthesis that passed cdk-nag. Any change to an
input is a new key, so a stale template is never used. ``FINETUNE_SYNTH_CACHE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finetune.local.template import LOCAL_ACCOUNT, REPO_ROOT, Synthesized, synthesize

CACHE_DIR = REPO_ROOT / ".cache" / "synth"
#: Files and folders (relative to the repository) whose content the template depends on.
INPUTS = (
    "app.py",
    "cdk.json",
    "stacks",
    "lambdas",
    "requirements.txt",
    "requirements-lambda.txt",
    "requirements-dev.txt",
    "package-lock.json",
    "finetune/local/template.py",
)
#: Installed packages whose version shapes the template (their pins are hashed too).
PACKAGES = ("aws-cdk-lib", "constructs", "cdk-nag")
#: Bumped when the entry's format changes.
FORMAT = 1


def _files(root: Path) -> Iterator[Path]:
    for name in INPUTS:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for item in sorted(path.rglob("*")):
                parts = item.relative_to(root).parts
                if (
                    item.is_file()
                    and item.suffix != ".pyc"
                    and not any(p == "__pycache__" or p.startswith(".") for p in parts)
                ):
                    yield item


def inputs_key(overrides: dict[str, Any], root: Path = REPO_ROOT) -> str:
    """The SHA-256 of every input of the synthesis (see the module docstring)."""
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    extra = {
        "format": FORMAT,
        "context": overrides,
        "account": LOCAL_ACCOUNT,
        "root": str(root),  # asset sources are absolute paths: a moved checkout synthesizes again
        "versions": versions,
        "python": sys.version_info[:2],
    }
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _load(entry: Path, key: str, root: Path) -> Synthesized | None:
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        assets = {k: Path(v) for k, v in data["assets"].items()}
        # The emulation runs code from the repository's assets (the handlers in lambdas/); the others
        # (the template itself, the CDK's Node.js provider code) lived in folders of that synthesis.
        if not all(p.exists() for p in assets.values() if p == root or root in p.parents):
            return None
        return Synthesized(
            stack_name=data["stack_name"],
            account=data["account"],
            region=data["region"],
            template=data["template"],
            assets=assets,
            outdir=entry.parent,
            reused=key,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or from another format: synthesize again


def _store(entry: Path, synth: Synthesized) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "stack_name": synth.stack_name,
        "account": synth.account,
        "region": synth.region,
        "template": synth.template,
        "assets": {k: str(v) for k, v in synth.assets.items()},
    }
    with tempfile.NamedTemporaryFile(
        "w", dir=entry.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as f:
        json.dump(data, f)
    os.replace(f.name, entry)  # atomic: a concurrent reader sees the old entry or the whole new one


def synthesize_cached(outdir: Path, **overrides: Any) -> Synthesized:
    """:func:`~finetune.local.template.synthesize`, or the template it made from the same inputs."""
    return synthesize_with_cache(outdir, overrides)


def synthesize_with_cache(
    outdir: Path, overrides: dict[str, Any], *, cache_dir: Path = CACHE_DIR, root: Path = REPO_ROOT
) -> Synthesized:
    """:func:`synthesize_cached` with the inputs under ``root`` and the entries in ``cache_dir``."""
    if os.environ.get("FINETUNE_SYNTH_CACHE") == "0":
        return synthesize(outdir, **overrides)
    key = inputs_key(overrides, root)
    entry = cache_dir / f"{key}.json"
    if entry.is_file():
        found = _load(entry, key, root)
        if found is not None:
            return found
    synth = synthesize(outdir, **overrides)
    with contextlib.suppress(OSError):  # a read-only checkout: no cache, same result
        _store(entry, synth)
    return synth
