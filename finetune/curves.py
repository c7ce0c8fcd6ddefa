"""Training and validation loss curves from Bedrock's metrics CSVs: read, align, draw.

The CSVs are parsed by :func:`bedrock_finetune.training_metrics.parse_loss_csv`, the same parser the
pipeline's quality gate uses. Bedrock numbers steps either across the whole job or from 0 again in
each epoch; both become one global step axis here (``step_number`` restarting when
``epoch_number`` changes is read as a restart), and the validation rows are placed on that axis by
their epoch. A CSV that Bedrock is still writing is read as far as it goes.

The figure is built with matplotlib's object API (no pyplot state), so it can be checked in tests
and drawn from any thread; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bedrock_finetune.training_metrics import (
    LossSeries,
    find_metrics_keys,
    parse_loss_csv,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPARKS = "▁▂▃▄▅▆▇█"
PLOT_SIZE_INCHES = (8.0, 4.5)
PLOT_DPI = 100


@dataclass(frozen=True)
class Point:
    step: int  # global step (0-based)
    epoch: int  # as in the CSV
    loss: float


@dataclass(frozen=True)
class Curves:
    """The aligned training and validation curves of one job, and where they were read."""

    training: tuple[Point, ...]
    validation: tuple[Point, ...]
    training_uri: str | None = None
    validation_uri: str | None = None
    #: Lines of the CSVs that had no usable loss, by file.
    unusable: tuple[str, ...] = ()

    @property
    def epochs(self) -> list[int]:
        return sorted({p.epoch for p in self.training} | {p.epoch for p in self.validation})

    def shown_epoch(self, epoch: int) -> int:
        """The epoch counted from 1, whatever the CSV starts at."""
        return epoch - (min(self.epochs) if self.epochs else 0) + 1

    @property
    def steps(self) -> int:
        return self.training[-1].step + 1 if self.training else 0

    def epoch_boundaries(self) -> list[tuple[int, int]]:
        """(first global step, epoch) of every epoch after the first, from the training curve."""
        found: list[tuple[int, int]] = []
        previous: int | None = None
        for point in self.training:
            if previous is not None and point.epoch != previous:
                found.append((point.step, point.epoch))
            previous = point.epoch
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "training": [[p.step, p.epoch, p.loss] for p in self.training],
            "validation": [[p.step, p.epoch, p.loss] for p in self.validation],
            "columns": ["step", "epoch", "loss"],
            "files": {"training": self.training_uri, "validation": self.validation_uri},
            "unusable": list(self.unusable),
        }


def align(training: LossSeries, validation: LossSeries) -> Curves:
    """Put both series on one global step axis (see the module docstring)."""
    offsets: dict[int, int] = {}
    points: list[Point] = []
    offset, last, epoch = 0, -1, None
    for step, row_epoch, loss in training.rows:
        if row_epoch != epoch:
            if step + offset <= last:  # step numbers restarted with the epoch
                offset = last + 1 - step
            offsets[row_epoch] = offset
            epoch = row_epoch
        last = step + offset
        points.append(Point(last, row_epoch, loss))
    known = sorted(offsets)
    aligned: list[Point] = []
    for step, row_epoch, loss in validation.rows:
        earlier = [e for e in known if e <= row_epoch]
        shift = offsets[earlier[-1]] if earlier else 0
        aligned.append(Point(step + shift, row_epoch, loss))
    unusable = [
        f"{series.uri}: line(s) {', '.join(map(str, series.unusable_lines))} have no usable loss"
        for series in (training, validation)
        if series.unusable_lines
    ]
    return Curves(tuple(points), tuple(aligned), training.uri, validation.uri, tuple(unusable))


def parse(training_csv: str | None, validation_csv: str | None) -> Curves:
    """Curves from the CSVs' text (either may be missing)."""
    training = parse_loss_csv(training_csv.splitlines(), "training_loss") if training_csv else LossSeries(())
    validation = (
        parse_loss_csv(validation_csv.splitlines(), "validation_loss") if validation_csv else LossSeries(())
    )
    return align(training, validation)


def read_curves(s3: Any, bucket: str, output_prefix: str, job_arn: str) -> Curves:
    """The job's curves from its CSVs under ``s3://bucket/output_prefix`` (as far as written)."""
    keys = find_metrics_keys(s3, bucket, output_prefix, job_arn)

    def read(name: str, column: str) -> LossSeries:
        if name not in keys:
            return LossSeries(())
        body = s3.get_object(Bucket=bucket, Key=keys[name])["Body"].read().decode("utf-8")
        return parse_loss_csv(body.splitlines(), column, f"s3://{bucket}/{keys[name]}")

    return align(read("training", "training_loss"), read("validation", "validation_loss"))


# ---------------------------------------------------------------------------- the terminal
def sparkline(values: Sequence[float], width: int = 60) -> str:
    """``values`` as block characters, averaged into at most ``width`` buckets (high = high loss)."""
    if not values:
        return ""
    buckets = min(width, len(values))
    means = []
    for index in range(buckets):
        chunk = values[index * len(values) // buckets : (index + 1) * len(values) // buckets]
        means.append(sum(chunk) / len(chunk))
    low, high = min(means), max(means)
    span = high - low
    if span <= 0 or not math.isfinite(span):
        return SPARKS[0] * buckets
    return "".join(SPARKS[min(len(SPARKS) - 1, int((m - low) / span * len(SPARKS)))] for m in means)


def epoch_rows(curves: Curves) -> list[dict[str, Any]]:
    """One row per epoch: its steps, last and mean training loss, validation loss."""
    rows = []
    for epoch in curves.epochs:
        training = [p for p in curves.training if p.epoch == epoch]
        validation = [p for p in curves.validation if p.epoch == epoch]
        rows.append(
            {
                "epoch": epoch,
                "first_step": training[0].step if training else None,
                "last_step": training[-1].step if training else None,
                "training_loss": training[-1].loss if training else None,
                "mean_training_loss": sum(p.loss for p in training) / len(training) if training else None,
                "validation_loss": validation[-1].loss if validation else None,
            }
        )
    return rows


def render_terminal(curves: Curves, width: int = 60) -> list[str]:
    """Sparklines and the per-epoch table."""
    if not curves.training and not curves.validation:
        return ["  no metrics yet: Bedrock writes the CSVs as the job trains"]
    lines = []
    if curves.training:
        losses = [p.loss for p in curves.training]
        lines.append(
            f"  training   {sparkline(losses, width)}  {losses[0]:.4f} -> {losses[-1]:.4f} "
            f"(min {min(losses):.4f}, {len(losses)} steps)"
        )
    if curves.validation:
        losses = [p.loss for p in curves.validation]
        lines.append(
            f"  validation {sparkline(losses, width)}  {losses[0]:.4f} -> {losses[-1]:.4f} "
            f"(min {min(losses):.4f}, {len(losses)} points)"
        )
    lines.append("")
    header = ("epoch", 5), ("steps", 11), ("train (last)", 12), ("train (mean)", 12), ("validation", 10)
    lines.append("  " + "  ".join(f"{title:>{width}}" for title, width in header))
    for row in epoch_rows(curves):
        steps = f"{row['first_step']}-{row['last_step']}" if row["first_step"] is not None else "-"
        lines.append(
            f"  {curves.shown_epoch(row['epoch']):>5}  {steps:>11}  {_num(row['training_loss']):>12}  "
            f"{_num(row['mean_training_loss']):>12}  {_num(row['validation_loss']):>10}"
        )
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------- the figure
def build_figure(curves: Curves, title: str) -> Figure:
    """Training loss per step (a line), validation loss (points joined), epoch boundaries marked."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - only when a plot is asked for

    figure = Figure(figsize=PLOT_SIZE_INCHES, dpi=PLOT_DPI, layout="constrained")
    axes = figure.add_subplot()
    if curves.training:
        axes.plot(
            [p.step for p in curves.training],
            [p.loss for p in curves.training],
            label="training loss",
            color="tab:blue",
            linewidth=1.2,
        )
    if curves.validation:
        axes.plot(
            [p.step for p in curves.validation],
            [p.loss for p in curves.validation],
            label="validation loss",
            color="tab:orange",
            marker="o",
            linewidth=1.2,
        )
    for step, epoch in curves.epoch_boundaries():
        axes.axvline(step - 0.5, color="grey", linestyle=":", linewidth=1)
        axes.annotate(
            f"epoch {curves.shown_epoch(epoch)}",
            xy=(step - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if curves.training or curves.validation:
        axes.legend(loc="upper right")
    return figure


def save_plot(curves: Curves, path: Path, title: str) -> None:
    """Write the figure to ``path`` (.png or .svg)."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise ValueError(f"{path}: the plot is written as .png or .svg")
    build_figure(curves, title).savefig(path, format=suffix)
