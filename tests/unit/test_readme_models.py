"""The README's model table says what the catalog says (one row per built-in model)."""

from __future__ import annotations

from pathlib import Path

from bedrock_finetune.catalog import BUILTIN_MODELS, ModelSpec

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- model-table:start -->", "<!-- model-table:end -->"
SERVING = {"on_demand": "on-demand deployment", "provisioned": "Provisioned Throughput"}


def row(spec: ModelSpec) -> list[str]:
    media = spec.media
    kinds = [k for k, formats in (("images", media.image_formats), ("video", media.video_formats)) if formats]
    return [
        spec.display_name,
        f"`{spec.model_id}`",
        ", ".join(spec.regions),
        f"`{spec.data_format}`",
        " + ".join(["text", *kinds]),
        "yes" if spec.takes_validation_file else "no",
        ", ".join(SERVING[m] for m in spec.serving_modes),
    ]


def readme_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index(START) + len(START) : text.index(END)].strip().splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table[2:]]


def test_the_readme_model_table_matches_the_catalog():
    assert readme_rows() == [row(spec) for spec in BUILTIN_MODELS.values()]


def test_the_model_table_is_on_the_first_screen_with_the_end_of_life_notice():
    head = README.read_text(encoding="utf-8").splitlines()[:60]
    assert any(START in line for line in head)
    assert any("past end of life" in line and "us-west-2" in line for line in head)


if __name__ == "__main__":  # print the table to paste into the README
    header = ["Model", "`base_model_id`", "Region", "Data format", "Input", "Validation file", "Serving"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in BUILTIN_MODELS.values():
        print("| " + " | ".join(row(spec)) + " |")
