"""``finetune validate``: check a run's data locally with the same rules as the pipeline."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bedrock_finetune.catalog import CLAUDE_3_HAIKU, CatalogError, ModelSpec, resolve_model
from bedrock_finetune.dataset import (
    DEFAULT_CHARS_PER_TOKEN,
    HyperparametersSource,
    Issue,
    LocalFile,
    ValidationReport,
    validate_run,
)
from bedrock_finetune.layout import EVALUATION_FILE, HYPERPARAMETERS_FILE, TRAIN_FILE, VALIDATION_FILE
from bedrock_finetune.pricing import Estimate, PriceOverrides, prices_for, training_estimate
from bedrock_finetune.sizes import human_bytes
from finetune.run_folder import RunNameError, run_name

if TYPE_CHECKING:
    from stacks.config import PipelineConfig

#: The readable summary lists at most this many errors and warnings; --json has them all.
SHOWN_ISSUES = 30


class UsageError(Exception):
    """A bad argument or a missing file: exit status 2 with a one-line message."""


def register(subparsers: Any) -> None:
    """Add the ``validate`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "validate",
        help="validate a run's training data, validation data and hyperparameters",
        description=(
            "Validate a run before anything is started. PATH is a training file, or a run folder "
            f"with {TRAIN_FILE} and optionally {VALIDATION_FILE} and {HYPERPARAMETERS_FILE}. "
            "Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="training JSONL file or run folder")
    parser.add_argument("--validation", metavar="FILE", help="validation JSONL file")
    parser.add_argument("--hyperparameters", metavar="FILE", help="hyperparameters JSON file")
    parser.add_argument(
        "--model",
        metavar="MODEL_ID",
        default=None,
        help=f"base model (default: the config's base_model_id, else {CLAUDE_3_HAIKU})",
    )
    parser.add_argument(
        "--chars-per-token",
        metavar="N",
        type=float,
        default=None,
        help="characters per token of the token estimate "
        f"(default: the config's chars_per_token, else {DEFAULT_CHARS_PER_TOKEN:g}, cautious)",
    )
    parser.add_argument(
        "--config",
        metavar="CDK_JSON",
        default=None,
        help="the deployment's cdk.json, for its base model, configured models, hyperparameter defaults "
        "and chars_per_token, so the check matches the pipeline's (default: ./cdk.json if present)",
    )
    parser.add_argument(
        "--bucket",
        metavar="NAME",
        default=None,
        help="the dataset's bucket: image and video URIs outside it are errors (MEDIA_OUTSIDE_BUCKET)",
    )
    parser.add_argument("--json", action="store_true", help="print the full JSON report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        train, validation, hyperparameters = _resolve_paths(args)
        folder = Path(args.path)
        run = run_name(folder) if folder.is_dir() else None
        target = deployment_target(args.config, args.model)
        model = target.model
        chars_per_token = args.chars_per_token if args.chars_per_token is not None else target.chars_per_token
        if not (math.isfinite(chars_per_token) and chars_per_token > 0):
            raise UsageError(f"--chars-per-token must be a positive number, not {chars_per_token:g}")
        try:
            hp_source = HyperparametersSource.from_path(hyperparameters) if hyperparameters else None
            report = validate_run(
                LocalFile(train),
                LocalFile(validation) if validation else None,
                hp_source,
                model,
                defaults=target.defaults,
                chars_per_token=chars_per_token,
                bucket=args.bucket,
            )
            evaluation_file = folder / EVALUATION_FILE if folder.is_dir() else None
            if evaluation_file is not None and evaluation_file.is_file():
                # Imported here: most runs have no evaluation file (starts faster without).
                from bedrock_finetune.evaluation_set import (  # noqa: PLC0415
                    add_to_report,
                    check_evaluation_file,
                )

                add_to_report(report, check_evaluation_file(LocalFile(evaluation_file), model))
        except OSError as exc:
            raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except (UsageError, RunNameError) as exc:
        print(f"finetune validate: {exc}", file=err)
        return 2
    cost = training_cost(report, model.model_id, target.prices)
    where = (
        f"Configuration: {target.config_path} (the deployment's model, limits and defaults)"
        if target.config_path
        else "Configuration: none (no cdk.json here: the built-in catalog; pass --config CDK_JSON)"
    )
    if args.json:
        document = {**report.to_dict(), "estimated_training_cost": cost.to_dict() if cost else None}
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
        print(where, file=err)
    else:
        out.write(render(report, model.display_name, cost))
        out.write(f"{where}\n")
        if run is not None:
            out.write(f"Run name: {run} (the folder name)\n")
    return 0 if report.valid else 1


class _Target:
    """What a run is checked against: the model, the configured hyperparameter defaults (for the
    deployment's own model only) and the token ratio. (A plain class: the dataclass decorator
    compiles several methods, at every start of the command.)"""

    __slots__ = ("chars_per_token", "config_path", "defaults", "model", "prices")

    def __init__(
        self,
        model: ModelSpec,
        defaults: Mapping[str, int | float] | None = None,
        chars_per_token: float = DEFAULT_CHARS_PER_TOKEN,
        prices: PriceOverrides | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.model = model
        self.defaults = defaults
        self.chars_per_token = chars_per_token
        self.prices = prices
        #: The cdk.json read, None without one.
        self.config_path = config_path


def deployment_target(config_path: str | None, model_id: str | None) -> _Target:
    """What the deployed pipeline validates with, read from cdk.json through the config loader.

    Without a cdk.json there is no deployment: the built-in catalog and the cautious token ratio.
    """
    path = Path(config_path) if config_path else Path("cdk.json")
    if not path.is_file():
        if config_path:
            raise UsageError(f"--config {config_path}: no such file")
        try:
            return _Target(resolve_model(model_id or CLAUDE_3_HAIKU))
        except CatalogError as exc:
            raise UsageError(str(exc)) from exc
    try:
        context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    config = _load(path, context)
    if model_id is None or model_id == config.base_model_id:
        return _Target(config.model, config.hyperparameters, config.chars_per_token, config.prices, path)
    # Another model: among the built-in and the deployment's configured models (parsed once, by the
    # loader); the configured hyperparameter defaults were checked against the deployment's model.
    try:
        return _Target(
            resolve_model(model_id, config.models), None, config.chars_per_token, config.prices, path
        )
    except CatalogError as exc:
        raise UsageError(f"--model {model_id} with {path}: {exc}") from exc


def _load(path: Path, context: Mapping[str, Any], what: str = "") -> PipelineConfig:
    from stacks.config import load_config  # noqa: PLC0415 - only with a cdk.json: starts faster without

    try:
        return load_config(context)
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{what + ' with ' if what else ''}{path}: {exc}") from exc


def _resolve_paths(args: argparse.Namespace) -> tuple[Path, Path | None, Path | None]:
    path = Path(args.path)
    validation: Path | None = None
    hyperparameters: Path | None = None
    if path.is_dir():
        train = path / TRAIN_FILE
        if not train.is_file():
            raise UsageError(f"{path} is a folder without {TRAIN_FILE}; put the training data there")
        if (path / VALIDATION_FILE).is_file():
            validation = path / VALIDATION_FILE
        if (path / HYPERPARAMETERS_FILE).is_file():
            hyperparameters = path / HYPERPARAMETERS_FILE
    elif path.is_file():
        train = path
    else:
        raise UsageError(f"{path}: no such file or folder")
    if args.validation:
        validation = Path(args.validation)
        if not validation.is_file():
            raise UsageError(f"--validation {validation}: no such file")
    if args.hyperparameters:
        hyperparameters = Path(args.hyperparameters)
        if not hyperparameters.is_file():
            raise UsageError(f"--hyperparameters {hyperparameters}: no such file")
    return train, validation, hyperparameters


def training_cost(report: ValidationReport, model_id: str, prices: PriceOverrides | None) -> Estimate | None:
    """The estimated training cost of the validated training data (None without token statistics)."""
    stats = report.train_statistics
    if stats is None:
        return None
    return training_estimate(stats.tokens_total, report.epochs, prices_for(model_id, prices))


def render(report: ValidationReport, model_name: str, cost: Estimate | None = None) -> str:
    """The readable summary."""
    lines = [f"{'VALID' if report.valid else 'INVALID'}: {report.train.path} for {model_name}"]
    files = [("train", report.train), ("validation", report.validation)]
    for role, summary in files:
        if summary is not None:
            lines.append(
                f"  {role:<11} {summary.path}  {summary.records:,} records, {human_bytes(summary.bytes)}"
            )
    if report.hyperparameters_path:
        lines.append(f"  {'hyperparams':<11} {report.hyperparameters_path}")
    for title, issues, counts in (
        ("Errors", report.errors, report.error_counts),
        ("Warnings", report.warnings, report.warning_counts),
    ):
        if not counts:
            continue
        total = sum(counts.values())
        by_code = ", ".join(f"{code} {count:,}" for code, count in counts.items())
        lines.append("")
        lines.append(f"{title} ({total:,}: {by_code}):")
        lines.extend(
            f"  {_where(issue, report)}  {issue.code}  {issue.message}" for issue in issues[:SHOWN_ISSUES]
        )
        if total > SHOWN_ISSUES:
            lines.append(f"  ... and {total - SHOWN_ISSUES:,} more: use --json for the full report")
    lines.append("")
    given = ", ".join(f"{name}={value:g}" for name, value in report.hyperparameters.items())
    lines.append(f"Hyperparameters: {given or 'none given'} (Bedrock defaults apply to the rest)")
    stats = report.train_statistics
    if stats is not None:
        lines.append(
            f"Estimated tokens ({report.chars_per_token:g} characters per token): training total "
            f"{stats.tokens_total:,}; per record min {stats.tokens_min:,}, median {stats.tokens_median:,}, "
            f"p95 {stats.tokens_p95:,}, max {stats.tokens_max:,}"
        )
        lines.append(
            f"Estimated billable training tokens: {stats.tokens_total:,} x {report.epochs} "
            f"epoch{'s' if report.epochs != 1 else ''} = {report.estimated_billable_tokens:,}"
        )
    if cost is not None:
        lines.append(cost.text)
    return "\n".join(lines) + "\n"


def _where(issue: Issue, report: ValidationReport) -> str:
    if issue.file == "hyperparameters":
        return report.hyperparameters_path or "hyperparameters"
    summary = report.train if issue.file == "train" else report.validation
    path = summary.path if summary else issue.file
    return f"{path}:{issue.line}" if issue.line is not None else path
