"""Loss curves from Bedrock's metrics CSVs: parsing, one step axis, the terminal view, the figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from finetune import curves

# The layout Bedrock writes for Claude 3 Haiku (and the emulation): steps numbered across the job,
# epochs from 0; validation once per epoch, at the epoch's last step.
GLOBAL_STEPS = """step_number,epoch_number,training_loss,perplexity
0,0,2.5,12.18
1,0,2.0,7.39
2,1,1.5,4.48
3,1,1.2,3.32
"""
GLOBAL_VALIDATION = """step_number,epoch_number,validation_loss,perplexity
1,0,2.2,9.03
3,1,1.4,4.06
"""
# The same training with step numbers restarting in each epoch.
PER_EPOCH_STEPS = """step_number,epoch_number,training_loss,perplexity
0,0,2.5,12.18
1,0,2.0,7.39
0,1,1.5,4.48
1,1,1.2,3.32
"""
PER_EPOCH_VALIDATION = """step_number,epoch_number,validation_loss,perplexity
1,0,2.2,9.03
1,1,1.4,4.06
"""
EXPECTED_TRAINING = [(0, 0, 2.5), (1, 0, 2.0), (2, 1, 1.5), (3, 1, 1.2)]
EXPECTED_VALIDATION = [(1, 0, 2.2), (3, 1, 1.4)]


def _points(points: tuple[curves.Point, ...]) -> list[tuple[int, int, float]]:
    return [(p.step, p.epoch, p.loss) for p in points]


@pytest.mark.parametrize(
    ("training", "validation"),
    [
        pytest.param(GLOBAL_STEPS, GLOBAL_VALIDATION, id="steps across the job"),
        pytest.param(PER_EPOCH_STEPS, PER_EPOCH_VALIDATION, id="steps restarting each epoch"),
    ],
)
def test_both_layouts_give_one_step_axis(training: str, validation: str) -> None:
    # When either layout is parsed
    read = curves.parse(training, validation)
    # Then training and validation share one global step axis, with the epochs of the CSV
    assert _points(read.training) == EXPECTED_TRAINING
    assert _points(read.validation) == EXPECTED_VALIDATION
    assert read.steps == 4
    assert read.epoch_boundaries() == [(2, 1)]
    assert [read.shown_epoch(e) for e in read.epochs] == [1, 2]


def test_a_csv_still_being_written_is_read_as_far_as_it_goes() -> None:
    # Given a training CSV whose last row is cut short, and no validation CSV yet
    partial = GLOBAL_STEPS + "4,1,"
    # When parsed
    read = curves.parse(partial, None)
    # Then the complete rows count, the cut one is named, and there is no validation curve
    assert _points(read.training) == EXPECTED_TRAINING
    assert read.validation == ()
    assert read.unusable == ("None: line(s) 6 have no usable loss",)


def test_rows_without_a_loss_are_skipped_not_fatal() -> None:
    read = curves.parse(GLOBAL_STEPS.replace("1,0,2.0,7.39", "1,0,nan,0"), GLOBAL_VALIDATION)
    assert [p.step for p in read.training] == [0, 2, 3]
    assert len(read.unusable) == 1


def test_sparkline_is_high_where_the_loss_is_high() -> None:
    line = curves.sparkline([4.0, 3.0, 2.0, 1.0])
    assert line == "█▆▃▁"
    assert curves.sparkline([1.0] * 5) == "▁▁▁▁▁"
    assert len(curves.sparkline([float(i) for i in range(500)], width=40)) == 40
    assert curves.sparkline([]) == ""


def test_terminal_view_has_a_row_per_epoch() -> None:
    read = curves.parse(GLOBAL_STEPS, GLOBAL_VALIDATION)
    text = "\n".join(curves.render_terminal(read))
    assert "2.5000 -> 1.2000 (min 1.2000, 4 steps)" in text
    assert "2.2000 -> 1.4000 (min 1.4000, 2 points)" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert rows == [["1", "0-1", "2.0000", "2.2500", "2.2000"], ["2", "2-3", "1.2000", "1.3500", "1.4000"]]


def test_the_figure_draws_both_curves_per_step_and_marks_the_epochs() -> None:
    # Given the curves of a two-epoch job
    read = curves.parse(GLOBAL_STEPS, GLOBAL_VALIDATION)
    # When the figure is built
    figure = curves.build_figure(read, "run-1 v1 - loss per step")
    # Then one axes holds the training loss per step and the validation loss at its steps
    [axes] = figure.axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert list(lines["training loss"].get_xdata()) == [0, 1, 2, 3]
    assert list(lines["training loss"].get_ydata()) == [2.5, 2.0, 1.5, 1.2]
    assert list(lines["validation loss"].get_xdata()) == [1, 3]
    assert list(lines["validation loss"].get_ydata()) == [2.2, 1.4]
    # and a vertical line where the second epoch starts, labelled with it
    boundaries = [line for line in axes.get_lines() if line.get_label().startswith("_")]
    assert [list(line.get_xdata()) for line in boundaries] == [[1.5, 1.5]]
    assert [t.get_text() for t in axes.texts] == ["epoch 2"]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == (
        "step",
        "loss",
        "run-1 v1 - loss per step",
    )


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_save_plot_writes_a_readable_image(tmp_path: Path, suffix: str) -> None:
    read = curves.parse(GLOBAL_STEPS, GLOBAL_VALIDATION)
    path = tmp_path / f"loss{suffix}"
    curves.save_plot(read, path, "run-1")
    if suffix == ".png":
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (800, 450)  # 8 x 4.5 inches at 100 dpi
    else:
        assert path.read_text().lstrip().startswith("<?xml") and "<svg" in path.read_text()


def test_save_plot_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        curves.save_plot(curves.parse(GLOBAL_STEPS, None), tmp_path / "loss.gif", "run-1")
