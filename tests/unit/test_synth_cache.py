"""The local runs reuse a synthesized template only while none of its inputs changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetune.local import synth_cache
from finetune.local.template import Synthesized


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A miniature repository with every kind of input."""
    root = tmp_path / "repo"
    for name, text in {
        "app.py": "app",
        "cdk.json": '{"context": {}}',
        "stacks/pipeline_stack.py": "stack",
        "lambdas/bedrock_finetune/dataset.py": "rules",
        "requirements.txt": "aws-cdk-lib==2.275.0",
        "package-lock.json": "{}",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def synths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Stand in for the CDK synthesis (seconds of Node): record each call, return a template."""
    calls: list[dict[str, Any]] = []

    def synthesize(outdir: Path, **overrides: Any) -> Synthesized:
        calls.append(overrides)
        return Synthesized(
            stack_name="BedrockFineTuning",
            account="123456789012",
            region="us-west-2",
            template={"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "n": len(calls)},
            # The handlers' code in the repository, and what lived in that synthesis's folders only.
            assets={"handlers.zip": tmp_path / "repo" / "lambdas", "provider.zip": tmp_path / "gone"},
            outdir=outdir,
        )

    monkeypatch.setattr(synth_cache, "synthesize", synthesize)
    monkeypatch.delenv("FINETUNE_SYNTH_CACHE", raising=False)
    return calls


def _cached(repo: Path, tmp_path: Path, **context: Any) -> Synthesized:
    return synth_cache.synthesize_with_cache(
        tmp_path / "out", context, cache_dir=tmp_path / "cache", root=repo
    )


def test_the_second_run_reuses_the_template_and_says_from_which_inputs(repo, tmp_path, synths) -> None:
    # Given a first run that synthesized
    first = _cached(repo, tmp_path)
    assert first.reused is None and len(synths) == 1
    # When a second run starts with the same inputs
    second = _cached(repo, tmp_path)
    # Then it does not synthesize, and gets the same template and assets, marked with the inputs' hash
    assert len(synths) == 1
    assert second.reused == synth_cache.inputs_key({}, repo)
    assert (second.template, second.assets, second.region) == (first.template, first.assets, first.region)


@pytest.mark.parametrize(
    "change",
    [
        "stacks/pipeline_stack.py",
        "lambdas/bedrock_finetune/dataset.py",
        "cdk.json",
        "requirements.txt",
        "app.py",
    ],
)
def test_any_changed_input_synthesizes_again(repo, tmp_path, synths, change) -> None:
    _cached(repo, tmp_path)
    # When one input changes
    (repo / change).write_text((repo / change).read_text() + " ")
    again = _cached(repo, tmp_path)
    # Then the template is synthesized again, not reused
    assert again.reused is None and len(synths) == 2


def test_a_new_file_or_other_context_is_a_new_key_but_bytecode_is_not(repo, tmp_path, synths) -> None:
    key = synth_cache.inputs_key({}, repo)
    (repo / "lambdas" / "__pycache__").mkdir()
    (repo / "lambdas" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert synth_cache.inputs_key({}, repo) == key
    assert synth_cache.inputs_key({"base_model_id": "amazon.nova-lite-v1:0:300k"}, repo) != key
    (repo / "stacks" / "tasks.py").write_text("new construct")
    assert synth_cache.inputs_key({}, repo) != key


def test_the_cache_can_be_turned_off(repo, tmp_path, synths, monkeypatch) -> None:
    monkeypatch.setenv("FINETUNE_SYNTH_CACHE", "0")
    _cached(repo, tmp_path)
    assert _cached(repo, tmp_path).reused is None and len(synths) == 2


def test_a_moved_checkout_synthesizes_again(repo, tmp_path, synths) -> None:
    # Given a cached template, whose asset sources are absolute paths in the checkout
    _cached(repo, tmp_path)
    # When the same files are used from another folder
    moved = repo.rename(tmp_path / "moved")
    # Then the template is not reused (its handler code paths would point at the old folder)
    assert _cached(moved, tmp_path).reused is None and len(synths) == 2
