"""The ``finetune`` parser: the local commands are there only when the emulation can run."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

import finetune.local
from finetune.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return set(subparsers.choices)


def _without_emulation_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the imported emulation so that the next import runs its dependency check again."""
    for name in [n for n in sys.modules if n == "finetune.local" or n.startswith("finetune.local.")]:
        monkeypatch.delitem(sys.modules, name)


def test_local_commands_are_registered_when_the_emulation_is_installed():
    assert {"validate", "convert", "local", "local-server"} <= _commands()


@pytest.mark.parametrize("dependency", finetune.local.DEPENDENCIES)
def test_without_an_emulation_dependency_the_local_commands_are_absent(dependency, monkeypatch, capsys):
    # Given the development dependency is not installed (None in sys.modules makes its import fail)
    _without_emulation_modules(monkeypatch)
    monkeypatch.setitem(sys.modules, dependency, None)
    # Then the CLI has no local commands, and help says why
    assert _commands() == {
        "validate", "convert", "submit", "runs", "status", "report", "invoke", "logs",
        "approve", "reject", "extend", "rollback",
    }  # fmt: skip
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog
    assert "local-server" not in out.split("options:")[0]
    assert f"not available: the local emulation needs {dependency}: pip install" in out
    # And the rest of the CLI works
    assert main(["local", "run"]) == 2
    assert "invalid choice: 'local'" in capsys.readouterr().err


def test_the_emulation_package_refuses_to_import_without_its_dependencies(monkeypatch):
    _without_emulation_modules(monkeypatch)
    monkeypatch.setitem(sys.modules, "moto", None)
    with pytest.raises(ModuleNotFoundError, match=r"requirements-dev\.txt") as raised:
        __import__("finetune.local.cli")
    assert raised.value.name == "moto"


def _valid_train_file(tmp_path):
    """A small valid Claude-format train.jsonl (40 records)."""
    train = tmp_path / "train.jsonl"
    records = (
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(40)
    )
    train.write_text("\n".join(json.dumps(record) for record in records))
    return train


def _python(code):
    """``code`` run by a fresh Python process in the repository (its cdk.json is read)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)


def test_validate_imports_no_aws_sdk_powertools_or_cdk(tmp_path):
    # Given a fresh process in the repository (its cdk.json is read) validating a small file
    train = _valid_train_file(tmp_path)
    code = (
        "import sys\nfrom finetune.main import main\n"
        f"status = main(['validate', {str(train)!r}])\nprint(status, ' '.join(sorted(sys.modules)))"
    )
    result = _python(code)
    status, modules = result.stdout.splitlines()[-1].split(" ", 1)
    # Then it validated, without loading what the pipeline's Lambdas or the CDK app need
    assert status == "0" and "stacks.config" in modules.split()
    heavy = ("boto3", "botocore", "aws_lambda_powertools", "aws_cdk", "constructs", "jsii", "moto")
    assert not [m for m in modules.split() if m.split(".")[0] in heavy]


def test_validate_as_a_process_starts_without_orjson_and_collects_again(tmp_path):
    # Given a fresh process that runs the CLI from its own command line, as the finetune script
    # does, on a valid file (every line takes the typed path)
    train = _valid_train_file(tmp_path)
    code = (
        "import gc, sys\nfrom finetune.main import main\n"
        f"sys.argv = ['finetune', 'validate', {str(train)!r}]\nstatus = main()\n"
        "print(status, gc.isenabled(), gc.get_freeze_count() > 0, 'orjson' in sys.modules)"
    )
    result = _python(code)
    # Then it is valid, orjson was never imported (no line needed it), and garbage collection,
    # paused while the command's modules loaded, runs again with those modules' objects frozen
    assert result.stdout.splitlines()[-1] == "0 True True False"


def test_main_called_by_another_program_leaves_its_garbage_collector_alone(tmp_path, capsys):
    # Given a program (here the tests) that calls main with arguments
    frozen = gc.get_freeze_count()
    # When it validates a file
    main(["validate", str(tmp_path / "missing.jsonl")])
    # Then none of the program's objects were frozen, and collection is on
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
