"""``finetune report RUN [--plot FILE]``: the loss curves and what the run's reports say."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bedrock_finetune.evaluation import reported
from bedrock_finetune.layout import OUTPUTS_PREFIX
from finetune import curves, runs
from finetune.output import CommandFailed, UsageError, run_command, write_json
from finetune.stack import add_stack_arguments, connect

REPORTS = ("validation.json", "training.json", "run.json")
EVALUATION_REPORT = "evaluation.json"
SHOWN_ERRORS = 5
#: Characters of a prompt, reference or answer shown per line for the worst prompts.
SHOWN_CHARS = 100


def register(subparsers: Any) -> None:
    """Add ``report``."""
    parser = subparsers.add_parser(
        "report",
        help="a run's training and validation loss curves, and its reports summarized",
        description="The loss curves of the latest run of line RUN (or an execution ARN) from Bedrock's "
        "metrics CSVs, as sparklines and a table per epoch, and the validation, training and run "
        "reports summarized. --plot writes a figure (.png or .svg). Exit status 0; 1 when there is "
        "nothing to plot yet or the stack cannot be read; 2 for usage errors.",
    )
    parser.add_argument("run", metavar="RUN", help="the run (line) name, or an execution ARN")
    parser.add_argument(
        "--plot", metavar="FILE", type=Path, help="write the loss curves to FILE (.png or .svg)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document (curves included)")
    add_stack_arguments(parser)
    parser.set_defaults(handler=lambda args: run_command("report", _report, args))


def _counts(counts: Any) -> str:
    if not isinstance(counts, dict) or not counts:
        return "none"
    return ", ".join(f"{code} {count:,}" for code, count in counts.items())


def summarize(name: str, report: Mapping[str, Any]) -> list[str]:
    """A few lines on one report."""
    if name == "validation.json":
        files = report.get("files") if isinstance(report.get("files"), dict) else {}
        records = ", ".join(
            f"{part} {info['records']:,}"
            for part, info in (files or {}).items()
            if isinstance(info, dict) and isinstance(info.get("records"), int)
        )
        lines = [
            f"{'valid' if report.get('valid') else 'INVALID'}; records: {records or '-'}; "
            f"errors: {_counts(report.get('error_counts'))}; "
            f"warnings: {_counts(report.get('warning_counts'))}"
        ]
        for issue in (report.get("errors") or [])[:SHOWN_ERRORS]:
            where = f"{issue.get('file')}:{issue.get('line')}" if issue.get("line") else issue.get("file")
            lines.append(f"  {where}  {issue.get('code')}  {issue.get('message')}")
        return lines
    if name == "training.json":
        gate: dict[str, Any] = report["qualityGate"] if isinstance(report.get("qualityGate"), dict) else {}
        return [
            f"final loss: training {report.get('finalTrainingLoss')}, "
            f"validation {report.get('finalValidationLoss')}; "
            f"best validation {report.get('bestValidationLoss')}",
            f"epochs {report.get('epochs')} of {report.get('configuredEpochs')}, steps {report.get('steps')}"
            + ("; stopped early" if report.get("earlyStopped") else ""),
            f"quality gate: {'passed' if gate.get('passed') else 'NOT passed'} ({gate.get('reason')})",
        ]
    if name == "run.json":
        lines = [
            f"outcome: {report.get('outcome')}" + (f" ({report.get('error')})" if report.get("error") else "")
        ]
        if report.get("cause"):
            lines.append(f"cause: {report['cause']}")
        for label, key in (
            ("custom model", "customModel"),
            ("provisioned model", "provisionedModel"),
            ("clean-up", "cleanup"),
        ):
            if report.get(key):
                lines.append(f"{label}: {report[key]}")
        for item in report.get("stillBilling") or []:
            lines.append(f"STILL BILLING: {item}")
        return lines
    return [", ".join(sorted(report))]


def _short(text: Any) -> str:
    flat = " ".join(str(text if text is not None else "-").split())
    return flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 3] + "..."


def _interval(aggregate: Any) -> str:
    if not isinstance(aggregate, dict):
        return "-"
    low, high = aggregate.get("ci95") or (None, None)
    return f"{aggregate.get('mean'):.2f} [{low:.2f}, {high:.2f}]"


def summarize_evaluation(view: Mapping[str, Any]) -> list[str]:
    """The evaluation: decision, aggregates side by side, cost, and the worst prompts against the
    reference (``view``: :func:`bedrock_finetune.evaluation.reported`)."""
    decision = view.get("decision") or {}
    if view.get("status") != "done":
        return [f"{view.get('status')}: {view.get('why') or 'scoring'} ({view.get('source')})"]
    lines = [str(decision.get("summary")), f"why: {decision.get('why')}", f"prompts: {view.get('source')}"]
    if decision.get("swapBack"):
        lines.append(f"swap back: {decision['swapBack']}")
    aggregates = view.get("aggregates") or {}
    candidate, current = aggregates.get("candidate") or {}, aggregates.get("current") or {}
    targets = view.get("targets") or {}
    lines.append(f"{'metric':<12} {'candidate':<22} {'current (' + str(targets.get('current')) + ')'}")
    for metric in sorted(set(candidate) | set(current)):
        lines.append(f"{metric:<12} {_interval(candidate.get(metric)):<22} {_interval(current.get(metric))}")
    for role, cost in (view.get("cost") or {}).items():
        lines.append(
            f"cost ({role}): {cost.get('calls')} calls, {cost.get('inputTokens'):,} input and "
            f"{cost.get('outputTokens'):,} output tokens; {cost.get('text')}"
        )
    worst = view.get("worst") or []
    if worst:
        lines.append(f"worst prompts by {view.get('metric')} (candidate against the reference):")
    for item in worst:
        lines.append(
            f"  #{item['id']}  candidate {item['candidateScore']:.2f}  current "
            + (f"{item['currentScore']:.2f}" if item.get("currentScore") is not None else "-")
        )
        for label in ("prompt", "reference", "candidate", "current"):
            lines.append(f"    {label + ':':<11}{_short(item.get(label))}")
    return lines


def _print_evaluation(evaluation: Mapping[str, Any] | None, uri: str, out: TextIO) -> None:
    print("", file=out)
    if evaluation is None:
        print(f"{EVALUATION_REPORT}: not written (yet)", file=out)
        return
    print(f"{EVALUATION_REPORT}  {uri}", file=out)
    for line in summarize_evaluation(evaluation):
        print(f"  {line}", file=out)


def _job_arn(execution: runs.RunExecution, found: runs.Progress, reports: Mapping[str, Any]) -> str | None:
    for source in (found.field("job"), execution.output.get("job") or {}, reports.get("training.json") or {}):
        if isinstance(source, dict) and source.get("jobArn"):
            return str(source["jobArn"])
    record = reports.get("run.json") or {}
    return str(record["customizationJob"]) if record.get("customizationJob") else None


def _report(args: argparse.Namespace, out: TextIO) -> int:
    plot: Path | None = args.plot
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {plot}: the figure is written as .png or .svg")
    clients, stack = connect(args)
    sfn, s3 = clients("stepfunctions"), clients("s3")
    execution = runs.find_run(sfn, stack.state_machine_arn, args.run)
    found = runs.progress(sfn, execution.arn)
    reports = {name: runs.read_report(s3, stack.bucket, execution.line, name) for name in REPORTS}
    evaluation_doc = runs.read_report(s3, stack.bucket, execution.line, EVALUATION_REPORT)
    evaluation = reported(evaluation_doc) if evaluation_doc else None
    job_arn = _job_arn(execution, found, reports)
    read = (
        curves.read_curves(s3, stack.bucket, f"{OUTPUTS_PREFIX}{execution.line}/", job_arn)
        if job_arn
        else curves.Curves((), ())
    )
    version = runs.dataset_version(s3, stack.bucket, execution)
    title = f"{execution.line}" + (f" v{version}" if version else "") + " - loss per step"
    if plot is not None:
        if not read.training and not read.validation:
            raise CommandFailed(
                f"run {execution.line} has no training metrics yet ({execution.status}, step {found.step}): "
                "Bedrock writes them as the job trains; try again later (finetune status shows the job)"
            )
        plot.parent.mkdir(parents=True, exist_ok=True)
        try:
            curves.save_plot(read, plot, title)
        except ModuleNotFoundError as exc:
            raise CommandFailed(
                f"--plot needs matplotlib, which is not installed ({exc}): run make install "
                "(requirements-dev.txt), or leave out --plot for the curves in the terminal"
            ) from exc
    if args.json:
        write_json(
            out,
            "report",
            {
                "run": execution.line,
                "version": version,
                "execution": {"arn": execution.arn, "status": execution.status},
                "job": job_arn,
                "curves": read.to_dict(),
                "epochs": curves.epoch_rows(read),
                "reports": {name: report for name, report in reports.items()},
                "plot": str(plot) if plot else None,
                "evaluation": evaluation,
            },
        )
        return 0
    print(f"Run {execution.line}" + (f" v{version}" if version else "") + f": {execution.status}", file=out)
    print(f"  execution  {execution.arn}", file=out)
    if job_arn:
        print(f"  job        {job_arn}", file=out)
    print("", file=out)
    print("Loss", file=out)
    for line in curves.render_terminal(read):
        print(line, file=out)
    for problem in read.unusable:
        print(f"  note: {problem}", file=out)
    for name in REPORTS:
        report = reports[name]
        print("", file=out)
        uri = f"s3://{stack.bucket}/reports/{execution.line}/{name}"
        if report is None:
            print(f"{name}: not written (yet)", file=out)
            continue
        print(f"{name}  {uri}", file=out)
        for line in summarize(name, report):
            print(f"  {line}", file=out)
    _print_evaluation(evaluation, f"s3://{stack.bucket}/reports/{execution.line}/{EVALUATION_REPORT}", out)
    if plot is not None:
        print("", file=out)
        print(
            f"Wrote {plot}: {len(read.training)} training steps, {len(read.validation)} validation points, "
            f"{len(read.epochs)} epoch(s)",
            file=out,
        )
    return 0
