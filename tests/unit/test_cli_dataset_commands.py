"""The ``finetune validate`` and ``finetune convert`` commands: output and exit codes."""

from __future__ import annotations

import json

import pytest

from finetune.main import main
from tests.unit.dataset_builders import dumps, valid_lines, with_line, write_jsonl


@pytest.fixture(autouse=True)
def outside_the_repository(tmp_path, monkeypatch):
    """Run from a folder without cdk.json, so results do not depend on the repository's config."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def run_folder(tmp_path):
    """A valid run folder with train, validation and hyperparameters files."""
    folder = tmp_path / "my-run"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", valid_lines(40))
    write_jsonl(folder / "validation.jsonl", valid_lines(5, start=1000))
    (folder / "hyperparameters.json").write_text(json.dumps({"epochCount": "3"}))
    return folder


# ---- validate -------------------------------------------------------------------------------


def test_valid_folder_exits_zero_with_a_readable_summary(run_folder, capsys):
    assert main(["validate", str(run_folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID:")
    assert "40 records" in out and "5 records" in out
    assert "epochCount=3" in out
    assert "x 3 epochs" in out


def test_warnings_do_not_fail_the_run(run_folder, capsys):
    (run_folder / "validation.jsonl").unlink()
    (run_folder / "hyperparameters.json").write_text('{"earlyStoppingPatience": 2}')
    assert main(["validate", str(run_folder)]) == 0
    assert "EARLY_STOPPING_WITHOUT_VALIDATION" in capsys.readouterr().out


def test_invalid_file_exits_one_and_points_at_the_line(tmp_path, capsys):
    train = write_jsonl(tmp_path / "data.jsonl", with_line(dumps({"system": "x"}), at=7))
    assert main(["validate", str(train)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID:")
    assert f"{train}:7  MISSING_MESSAGES" in out


def test_json_report(run_folder, capsys):
    assert main(["validate", str(run_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True
    assert report["files"]["train"]["records"] == 40
    assert report["files"]["validation"]["path"] == str(run_folder / "validation.jsonl")
    assert report["hyperparameters"] == {"epochCount": 3}


def test_a_folders_evaluation_file_is_checked_too(run_folder, capsys):
    # Given a run folder whose evaluation.jsonl has a line that is not JSON (its checks load
    # only when the file is there)
    (run_folder / "evaluation.jsonl").write_text("{not json\n")

    # When the folder is validated, Then the run is invalid for that line
    assert main(["validate", str(run_folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error_counts"] == {"INVALID_JSON": 1}


def test_explicit_files_override_the_folder(run_folder, tmp_path, capsys):
    other = write_jsonl(tmp_path / "other.jsonl", ["{"])
    assert main(["validate", str(run_folder / "train.jsonl"), "--validation", str(other), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error_counts"] == {"INVALID_JSON": 1}
    assert report["errors"][0]["file"] == "validation"


def test_long_lists_are_shortened_in_the_summary(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", valid_lines(40) + ["{"] * 45)
    assert main(["validate", str(train)]) == 1
    assert "... and 15 more: use --json for the full report" in capsys.readouterr().out


def test_chars_per_token_option(tmp_path, capsys):
    lines = valid_lines(40)
    lines[0] = dumps(
        {"messages": [{"role": "user", "content": "q" * 100_000}, {"role": "assistant", "content": "a"}]}
    )
    train = write_jsonl(tmp_path / "train.jsonl", lines)
    assert main(["validate", str(train)]) == 1
    assert main(["validate", str(train), "--chars-per-token", "6"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "{tmp}/missing"], "{tmp}/missing: no such file or folder"),
        (["validate", "{tmp}"], "without train.jsonl"),
        (
            ["validate", "{tmp}/run/train.jsonl", "--validation", "{tmp}/v.jsonl"],
            "--validation {tmp}/v.jsonl",
        ),
        (
            ["validate", "{tmp}/run/train.jsonl", "--hyperparameters", "{tmp}/hp.json"],
            "--hyperparameters {tmp}/hp",
        ),
        (["validate", "{tmp}/run/train.jsonl", "--model", "anthropic.claude-9"], "not in the model catalog"),
        (["validate", "{tmp}/run/train.jsonl", "--chars-per-token", "0"], "--chars-per-token"),
    ],
)
def test_usage_errors_exit_two_with_a_one_line_message(tmp_path, capsys, args, message):
    (tmp_path / "run").mkdir()
    write_jsonl(tmp_path / "run" / "train.jsonl", valid_lines(40))
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("finetune validate: ")
    assert message.replace("{tmp}", str(tmp_path)) in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate"], "the following arguments are required: PATH"),
        (["validate", "x", "--chars-per-token", "many"], "invalid float value"),
        (["validate", "x", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_two_with_argparse_message(capsys, args, message):
    assert main(args) == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "validate" in capsys.readouterr().out


# ---- convert --------------------------------------------------------------------------------


def prompt_lines(count: int) -> list[str]:
    return [json.dumps({"prompt": f"What is {i} + {i}?", "completion": str(2 * i)}) for i in range(count)]


def test_convert_writes_claude_records(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [*prompt_lines(40), ""])
    target = tmp_path / "train.jsonl"
    assert main(["convert", str(source), str(target), "--system", "You add numbers."]) == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 40
    assert records[3] == {
        "system": "You add numbers.",
        "messages": [{"role": "user", "content": "What is 3 + 3?"}, {"role": "assistant", "content": "6"}],
    }
    assert "Converted 40 records" in capsys.readouterr().out
    # And the result passes validation
    assert main(["validate", str(target)]) == 0


def test_convert_without_system_leaves_it_out(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", prompt_lines(2))
    target = tmp_path / "out.jsonl"
    assert main(["convert", str(source), str(target)]) == 0
    assert "system" not in json.loads(target.read_text().splitlines()[0])


def test_convert_reports_bad_lines_with_numbers_and_writes_nothing(tmp_path, capsys):
    lines = prompt_lines(6)
    lines[1] = "{"
    lines[2] = json.dumps({"prompt": "hi"})
    lines[3] = json.dumps({"prompt": "hi", "completion": "yo", "label": 1})
    lines[4] = json.dumps({"prompt": "hi", "completion": "  "})
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    target = tmp_path / "out.jsonl"
    assert main(["convert", str(source), str(target)]) == 1
    err = capsys.readouterr().err
    assert f"{source}:2: not valid JSON" in err
    assert f"{source}:3: missing completion" in err
    assert f"{source}:4: unexpected 'label'" in err
    assert f"{source}:5: 'completion' is empty" in err
    assert f"{source}:1:" not in err and f"{source}:6:" not in err
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [source]  # no temporary file left behind


def test_convert_accepts_a_byte_order_mark_and_crlf(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(prompt_lines(3)).encode() + b"\r\n")
    target = tmp_path / "out.jsonl"
    assert main(["convert", str(source), str(target)]) == 0
    assert len(target.read_text().splitlines()) == 3


def test_convert_missing_input_is_a_usage_error(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.jsonl"), str(tmp_path / "out.jsonl")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_the_deployments_cdk_json_gives_defaults_model_and_token_ratio(tmp_path, capsys):
    # Given a deployment config with early-stopping defaults and a finer token ratio
    config = tmp_path / "deploy" / "cdk.json"
    config.parent.mkdir()
    context = {"hyperparameters": {"earlyStoppingPatience": 3}, "chars_per_token": 6}
    config.write_text(json.dumps({"context": context}))
    train = write_jsonl(tmp_path / "train.jsonl", valid_lines(40))
    # When a training file without validation data is checked against that config
    assert main(["validate", str(train), "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Then the configured defaults apply, as they would in the pipeline
    assert report["hyperparameters"] == {"earlyStoppingPatience": 3}
    assert report["warning_counts"] == {"EARLY_STOPPING_WITHOUT_VALIDATION": 1}
    assert report["chars_per_token"] == 6


def test_a_bad_config_is_a_usage_error(tmp_path, capsys):
    config = tmp_path / "cdk.json"
    config.write_text(json.dumps({"context": {"model_unit": 1}}))
    train = write_jsonl(tmp_path / "train.jsonl", valid_lines(40))
    assert main(["validate", str(train), "--config", str(config)]) == 2
    assert "unknown configuration key(s): model_unit" in capsys.readouterr().err


def test_a_model_configured_in_cdk_json_is_checked_with_its_own_limits(tmp_path, capsys, monkeypatch):
    # Given a deployment of Claude 3 Haiku that also configures a model needing 100 training records
    limits = {
        "min_train_records": 100,
        "max_train_records": 10000,
        "max_validation_records": 1000,
        "max_total_records": 10000,
        "max_tokens_per_record": 32000,
        "max_train_bytes": 10**9,
        "max_validation_bytes": 10**8,
    }
    other = "anthropic.claude-next-v1:0"
    context = {
        "hyperparameters": {"earlyStoppingPatience": 3},
        "models": {other: {"display_name": "Claude Next", "regions": ["us-west-2"], "limits": limits}},
    }
    config = tmp_path / "cdk.json"
    config.write_text(json.dumps({"context": context}))
    train = write_jsonl(tmp_path / "train.jsonl", valid_lines(40))
    from stacks import config as config_module

    loads: list[object] = []
    real_load = config_module.load_config
    monkeypatch.setattr(config_module, "load_config", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    # When 40 records are checked against that model
    assert main(["validate", str(train), "--config", str(config), "--model", other, "--json"]) == 1
    assert len(loads) == 1, "the configuration (and its models) is read once"
    report = json.loads(capsys.readouterr().out)
    # Then its minimum applies, and the deployment's defaults (for Haiku) do not
    assert report["error_counts"] == {"TOO_FEW_RECORDS": 1}
    assert report["hyperparameters"] == {}
    # And against the deployment's own model the same file is valid, with its defaults
    assert main(["validate", str(train), "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hyperparameters"] == {"earlyStoppingPatience": 3}


def test_a_model_neither_built_in_nor_configured_is_a_usage_error(tmp_path, capsys):
    config = tmp_path / "cdk.json"
    config.write_text(json.dumps({"context": {}}))
    train = write_jsonl(tmp_path / "train.jsonl", valid_lines(40))
    assert main(["validate", str(train), "--config", str(config), "--model", "anthropic.claude-9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"finetune validate: --model anthropic.claude-9 with {config}:")
    assert "not in the model catalog" in err
