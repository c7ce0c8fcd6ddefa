"""``finetune submit RUN_DIR``: validate with the deployment's settings, upload, start the run.

The check is the deployed validator's own: its model specification, hyperparameter defaults and
token ratio are read from the ValidateDataset function's configuration (the stack's
``ValidateFunctionName`` output). Invalid data is refused before anything is uploaded, with the
report ``finetune validate`` prints. ``train.jsonl`` is uploaded last: its upload starts the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bedrock_finetune.catalog import CatalogError, ModelSpec
from bedrock_finetune.dataset import HyperparametersSource, LocalFile, ValidationReport, validate_run
from bedrock_finetune.layout import DATASETS_PREFIX, HYPERPARAMETERS_FILE, TRAIN_FILE, VALIDATION_FILE
from bedrock_finetune.settings import SettingsError, ValidateDatasetSettings
from finetune import runs
from finetune.output import CommandFailed, UsageError, run_command, write_json
from finetune.run_folder import UPLOAD_ORDER, RunNameError, check_run_folder
from finetune.stack import PipelineStack, add_stack_arguments, connect
from finetune.status_cmd import FOLLOW_INTERVAL, follow
from finetune.validate_cmd import render

#: How long to wait for the upload's execution to appear (EventBridge delivers within seconds).
START_TIMEOUT = 120.0


def register(subparsers: Any) -> None:
    """Add ``submit``."""
    parser = subparsers.add_parser(
        "submit",
        help="validate a run folder with the deployment's settings, upload it and start the run",
        description="Validate RUN_DIR as the deployed validator will, then upload validation.jsonl, "
        "hyperparameters.json and evaluation.jsonl (those present) and train.jsonl last, whose upload "
        "starts the run; print the execution it started. Exit status: 0 started (with --wait: "
        "succeeded), 1 invalid data or a run that failed, 2 usage errors.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="folder with train.jsonl")
    parser.add_argument("--run", metavar="NAME", help="the run (line) name (default: the folder name)")
    parser.add_argument("--wait", action="store_true", help="follow the run to its end, as status --follow")
    parser.add_argument(
        "--interval", type=float, default=FOLLOW_INTERVAL, help="seconds between looks with --wait"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_stack_arguments(parser)
    parser.set_defaults(handler=lambda args: run_command("submit", submit, args))


def deployed_settings(lambda_client: Any, stack: PipelineStack) -> tuple[ModelSpec, ValidateDatasetSettings]:
    """The deployed validator's model and settings, from its function configuration."""
    name = stack.validate_function
    variables = lambda_client.get_function_configuration(FunctionName=name).get("Environment", {})
    try:
        settings = ValidateDatasetSettings.from_env(variables.get("Variables", {}))
        model = ModelSpec.from_dict(settings.base_model_id, settings.model_spec, where="validator")
    except (SettingsError, CatalogError) as exc:
        raise CommandFailed(
            f"the deployed validator {name} has settings this version cannot read ({exc}); update this "
            "checkout to the deployed version, or redeploy"
        ) from exc
    return model, settings


def check(
    run_dir: Path, model: ModelSpec, settings: ValidateDatasetSettings, bucket: str
) -> ValidationReport:
    """The deployed validator's verdict on the run folder."""
    validation = run_dir / VALIDATION_FILE
    hyperparameters = run_dir / HYPERPARAMETERS_FILE
    try:
        return validate_run(
            LocalFile(run_dir / TRAIN_FILE),
            LocalFile(validation) if validation.is_file() else None,
            HyperparametersSource.from_path(hyperparameters) if hyperparameters.is_file() else None,
            model,
            defaults=settings.default_hyperparameters,
            chars_per_token=settings.chars_per_token,
            bucket=bucket,
        )
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from exc


def upload(
    s3: Any, bucket: str, run_dir: Path, run: str, progress: TextIO | None
) -> dict[str, dict[str, Any]]:
    """Upload the run's files, ``train.jsonl`` last; returns key -> {versionId, etag}."""
    uploaded: dict[str, dict[str, Any]] = {}
    for name in UPLOAD_ORDER:
        path = run_dir / name
        if not path.is_file():
            continue
        key = f"{DATASETS_PREFIX}{run}/{name}"
        size = path.stat().st_size
        sent = [0]

        def show(count: int, size: int = size, name: str = name, sent: list[int] = sent) -> None:
            sent[0] += count
            if progress is not None:
                progress.write(f"\r  uploading {name}: {sent[0] * 100 // max(1, size):3d}%")
                progress.flush()

        s3.upload_file(str(path), bucket, key, Callback=show if size > 1024 * 1024 else None)
        if progress is not None and size > 1024 * 1024:
            progress.write("\n")
        head = s3.head_object(Bucket=bucket, Key=key)
        uploaded[key] = {"versionId": head.get("VersionId"), "etag": head.get("ETag", "").strip('"')}
    return uploaded


def started_execution(
    sfn: Any, state_machine_arn: str, key: str, upload: dict[str, Any], *, timeout: float = START_TIMEOUT
) -> runs.RunExecution:
    """The execution the upload of ``key`` (this version) started; CommandFailed after ``timeout``."""
    version_id, etag = upload.get("versionId"), upload.get("etag")
    deadline = time.time() + timeout
    while True:
        for summary in runs.execution_summaries(sfn, state_machine_arn, 20):
            execution = runs.describe(sfn, summary["executionArn"])
            if execution.key != key:
                continue
            # A versioned bucket (the stack's is) names the upload exactly; else its content does.
            if (execution.version_id or None, execution.etag) == (version_id, etag) or (
                version_id and execution.version_id == version_id
            ):
                return execution
        if time.time() > deadline:
            raise CommandFailed(
                f"{key} was uploaded, but no execution started for it within {timeout:.0f} s: check that "
                "the stack's upload rule is enabled; finetune runs lists the run once it starts"
            )
        time.sleep(1.0)


def submit(args: argparse.Namespace, out: TextIO) -> int:
    """The command, after argument parsing: writes to ``out``, returns the exit status."""
    try:
        run = check_run_folder(args.run_dir, args.run)
    except RunNameError as exc:
        raise UsageError(str(exc)) from exc
    clients, stack = connect(args)
    model, settings = deployed_settings(clients("lambda"), stack)
    report = check(args.run_dir, model, settings, stack.bucket)
    if not report.valid:
        if args.json:
            write_json(out, "submit", {"run": run, "valid": False, "validation": report.to_dict()})
        else:
            out.write(render(report, model.display_name))
            print("\nNothing was uploaded: fix the errors above, then submit again.", file=out)
        return 1
    status_out = sys.stderr if args.json else out
    if not args.json:
        if report.warning_count:
            out.write(render(report, model.display_name))
        records = ", ".join(
            f"{role} {summary.records:,}"
            for role, summary in (("train", report.train), ("validation", report.validation))
            if summary is not None
        )
        print(
            f"Valid for {model.display_name} with the deployed validator's settings: records {records}; "
            f"{report.warning_count} warning(s); about {report.estimated_billable_tokens:,} billable "
            "training tokens.",
            file=out,
        )
    uploaded = upload(
        clients("s3"), stack.bucket, args.run_dir, run, sys.stderr if sys.stderr.isatty() else None
    )
    key = f"{DATASETS_PREFIX}{run}/{TRAIN_FILE}"
    for name in uploaded:
        print(f"  uploaded s3://{stack.bucket}/{name}", file=status_out)
    execution = started_execution(clients("stepfunctions"), stack.state_machine_arn, key, uploaded[key])
    version = runs.dataset_version(clients("s3"), stack.bucket, execution)
    print(
        f"Started run {run}" + (f" v{version}" if version else "") + f": execution {execution.arn}",
        file=status_out,
    )
    document: dict[str, Any] = {
        "run": run,
        "valid": True,
        "version": version,
        "uploaded": list(uploaded),
        "execution": execution.arn,
    }
    if not args.wait:
        if args.json:
            write_json(out, "submit", document)
        else:
            print(f"Follow it with: finetune status {run} --follow", file=out)
        return 0
    final = follow(clients, stack, execution, out, interval=args.interval, quiet=args.json)
    if args.json:
        write_json(out, "submit", {**document, "status": final})
    return 0 if final["execution"]["status"] == "SUCCEEDED" else 1
