"""A run folder on disk and its run name: one rule for ``validate``, ``submit`` and ``local``.

The run name is the folder's own name (``.`` is the current folder's name), or the name given with
``--run``; it must be a name the pipeline accepts in ``datasets/<run>/train.jsonl``
(:data:`bedrock_finetune.layout.RUN_NAME_PATTERN`).
"""

from __future__ import annotations

from pathlib import Path

from bedrock_finetune.layout import (
    EVALUATION_FILE,
    HYPERPARAMETERS_FILE,
    RUN_NAME_PATTERN,
    TRAIN_FILE,
    VALIDATION_FILE,
)

#: The files a run folder may hold, in upload order: ``train.jsonl`` last, since its upload starts the run.
UPLOAD_ORDER = (VALIDATION_FILE, HYPERPARAMETERS_FILE, EVALUATION_FILE, TRAIN_FILE)


class RunNameError(ValueError):
    """The folder (or ``--run``) does not give a usable run name, or the folder is no run folder."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run name, or None."""
    if RUN_NAME_PATTERN.match(name):
        return None
    return (
        f"run name {name!r} may only contain letters, digits, '.', '_' and '-', start with a letter or "
        "digit, and be at most 100 characters (Bedrock rejects other characters in S3 URIs)"
    )


def run_name(run_dir: Path, given: str | None = None) -> str:
    """The run name of ``run_dir`` (its resolved folder name) or ``given``; RunNameError if unusable."""
    name = given if given is not None else run_dir.resolve().name
    problem = name_problem(name)
    if problem:
        where = "--run" if given is not None else "the folder name"
        fix = (
            "pass another --run"
            if given is not None
            else "rename the folder (finetune submit also takes --run NAME)"
        )
        raise RunNameError(f"{problem}: {where} gives {name!r}; {fix}")
    return name


def check_run_folder(run_dir: Path, given: str | None = None) -> str:
    """The run name; RunNameError when ``run_dir`` is not a folder with ``train.jsonl``."""
    if not run_dir.is_dir():
        raise RunNameError(f"{run_dir} is not a folder")
    if not (run_dir / TRAIN_FILE).is_file():
        raise RunNameError(f"{run_dir} has no {TRAIN_FILE}; a run folder holds {TRAIN_FILE} at least")
    return run_name(run_dir, given)
