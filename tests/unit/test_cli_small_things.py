"""What users tripped over: which cdk.json validate used, run names, counts in summaries."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from finetune.local import runner
from finetune.main import main
from tests.unit.dataset_builders import valid_lines, write_jsonl

ROOT_CDK_JSON = {"context": {"stack_name": "Mine", "chars_per_token": 4.5}}


@pytest.fixture(autouse=True)
def outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _run_folder(parent, name):
    folder = parent / name
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", valid_lines(40))
    return folder


def test_validate_says_it_used_no_cdk_json(tmp_path, capsys):
    # Given a folder without cdk.json
    folder = _run_folder(tmp_path, "my-run")
    # When it is validated
    assert main(["validate", str(folder)]) == 0
    # Then the output says no configuration was read, and which run name the folder gives
    out = capsys.readouterr().out
    assert "Configuration: none (no cdk.json here" in out
    assert "Run name: my-run (the folder name)" in out


def test_validate_names_the_cdk_json_it_used(tmp_path, capsys):
    # Given a deployment's cdk.json elsewhere
    config = tmp_path / "deploy" / "cdk.json"
    config.parent.mkdir()
    config.write_text(json.dumps(ROOT_CDK_JSON))
    folder = _run_folder(tmp_path, "my-run")
    # When validated against it, as text and as JSON
    assert main(["validate", str(folder), "--config", str(config)]) == 0
    assert f"Configuration: {config} (the deployment's model" in capsys.readouterr().out
    assert main(["validate", str(folder), "--config", str(config), "--json"]) == 0
    captured = capsys.readouterr()
    # Then the text says which file; with --json stdout stays the report and stderr says it
    assert json.loads(captured.out)["chars_per_token"] == 4.5
    assert f"Configuration: {config}" in captured.err


def test_validate_and_local_refuse_the_same_run_name_with_the_same_words(tmp_path, capsys):
    # Given a run folder whose name the pipeline cannot use
    folder = _run_folder(tmp_path, "my run")
    # When validate and local check it
    assert main(["validate", str(folder)]) == 2
    validate_says = capsys.readouterr().err.strip().removeprefix("finetune validate: ")
    with pytest.raises(runner.RunFolderError) as local_says:
        runner.check_run_folder(folder)
    # Then both refuse it, with the same reason and what to do
    assert validate_says == str(local_says.value)
    assert "run name 'my run' may only contain letters, digits" in validate_says
    assert "rename the folder" in validate_says


def test_validate_and_local_agree_on_the_name_of_the_current_folder(tmp_path, monkeypatch, capsys):
    # Given the user is inside the run folder and passes "."
    folder = _run_folder(tmp_path, "support-bot")
    monkeypatch.chdir(folder)
    # Then both take the folder's own name
    assert main(["validate", "."]) == 0
    assert "Run name: support-bot" in capsys.readouterr().out
    assert runner.check_run_folder(folder.parent / "support-bot" / ".") == "support-bot"


def test_local_summary_prints_error_counts_not_a_dict():
    # Given a local run that failed validation with 40 INVALID_ROLE errors and 2 INVALID_JSON
    report = {
        "valid": False,
        "error_counts": {"INVALID_ROLE": 40, "INVALID_JSON": 2},
        "errors": [{"file": "train", "line": 3, "code": "INVALID_ROLE", "message": "role 'bot' ..."}],
    }
    result = SimpleNamespace(
        run="r", scenario="invalid-data", status="FAILED", execution_arn="arn:exec", final_state={},
        validation_report=report, deployment=SimpleNamespace(bucket="b"), error="DatasetInvalid",
        cause="c", notifications=[], deletion=None, seconds=1.0, aws_seconds=60.0,
    )  # fmt: skip
    out = io.StringIO()
    # When the summary is printed
    runner.print_summary(result, out)  # type: ignore[arg-type]
    # Then the counts read as "CODE count", not as a Python dict
    assert "INVALID: 42 error(s): INVALID_ROLE 40, INVALID_JSON 2" in out.getvalue()
    assert "{" not in out.getvalue()


def test_local_server_takes_context_as_local_does(capsys):
    # A malformed -c is refused before anything is synthesized or served, with local's message
    assert main(["local-server", "--port", "1", "-c", "base_model_id"]) == 2
    assert "finetune local-server: -c 'base_model_id': expected KEY=VALUE" in capsys.readouterr().err
    from finetune.main import build_parser

    args = build_parser().parse_args(["local-server", "-c", "base_model_id=amazon.nova-lite-v1:0:300k"])
    assert args.context == ["base_model_id=amazon.nova-lite-v1:0:300k"]
