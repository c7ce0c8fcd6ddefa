"""The validator's compiled parsers ship to Lambda in a layer built from platform wheels."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from stacks import parsers_layer as layer_module
from stacks.parsers_layer import PACKAGES, ParsersLayerMissing, parsers_layer
from tests.conftest import Synthesized

REPOSITORY = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of a requirements file."""
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", path.read_text(), flags=re.MULTILINE))


def _validator(synthesized: Synthesized) -> dict[str, Any]:
    (function,) = (
        f
        for logical_id, f in synthesized.resources("AWS::Lambda::Function").items()
        if logical_id.startswith("ValidateDatasetFunction")
    )
    return function


def _layer_of(synthesized: Synthesized, function: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    layers = synthesized.resources("AWS::Lambda::LayerVersion")
    (logical_id,) = (ref["Ref"] for ref in function["Properties"]["Layers"] if "Ref" in ref)
    return logical_id, layers[logical_id]


def _shipped_folder(synthesized: Synthesized, layer: dict[str, Any]) -> Path:
    """The staged folder that synth zips and uploads as the layer's content."""
    app = synthesized.stack.node.root
    assert isinstance(app, App)
    outdir = Path(app.outdir)
    manifest = json.loads((outdir / f"{synthesized.stack.artifact_id}.assets.json").read_text())
    key = layer["Properties"]["Content"]["S3Key"]
    (source,) = (
        entry["source"]["path"]
        for entry in manifest["files"].values()
        if any(d["objectKey"] == key for d in entry["destinations"].values())
    )
    return outdir / source


def test_the_validator_function_gets_the_parsers_layer_for_its_runtime_and_architecture(
    synthesized: Synthesized,
) -> None:
    # Given the app as synthesized from cdk.json
    function = _validator(synthesized)

    # When we follow the function's own layer
    _, layer = _layer_of(synthesized, function)

    # Then the layer is for exactly the function's runtime and architecture
    properties = function["Properties"]
    assert layer["Properties"]["CompatibleRuntimes"] == [properties["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == properties["Architectures"] == ["x86_64"]


def test_the_layer_holds_the_pinned_wheels_built_for_the_lambda_platform(synthesized: Synthesized) -> None:
    # Given the folder synth packaged as the validator's layer
    function = _validator(synthesized)
    _, layer = _layer_of(synthesized, function)
    site = _shipped_folder(synthesized, layer) / "python"
    runtime = function["Properties"]["Runtime"]  # e.g. python3.14
    cpython = "cp" + runtime.removeprefix("python").replace(".", "")

    # Then it holds exactly the pinned versions, the same as the local install's pins
    layer_pins = _pins(REPOSITORY / "requirements-lambda-layer.txt")
    assert set(layer_pins) == set(PACKAGES)
    local_pins = _pins(REPOSITORY / "requirements-lambda.txt")
    assert {name: local_pins.get(name) for name in PACKAGES} == layer_pins
    dist_infos = sorted(p.name for p in site.glob("*.dist-info"))
    assert dist_infos == sorted(f"{name}-{version}.dist-info" for name, version in layer_pins.items())

    for name in PACKAGES:
        dist_info = site / f"{name}-{layer_pins[name]}.dist-info"
        # And each wheel was built for the function's CPython and Linux on x86_64 (manylinux)
        tags = re.findall(r"^Tag: (\S+)$", (dist_info / "WHEEL").read_text(), flags=re.MULTILINE)
        assert tags, name
        for tag in tags:
            interpreter, abi, platform = tag.split("-")
            assert (interpreter, abi) == (cpython, cpython), tag
            assert re.fullmatch(r"manylinux(2014|_2_\d+)_x86_64", platform), tag
        extensions = list((site / name).glob("*.so"))
        assert extensions, f"{name} has no compiled extension"
        assert all(f"cpython-{cpython[2:]}-x86_64-linux-gnu" in e.name for e in extensions)

        # And every file is the one the wheel's RECORD lists (sha256), nothing else is in the package
        recorded: dict[str, str] = {}
        for line in (dist_info / "RECORD").read_text().splitlines():
            path, digest, _ = line.rsplit(",", 2)
            if digest:
                recorded[path] = digest
        shipped = {
            str(p.relative_to(site))
            for p in (site / name).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert shipped <= set(recorded), shipped - set(recorded)
        for path in shipped:
            algorithm, _, expected = recorded[path].partition("=")
            digest = hashlib.new(algorithm, (site / path).read_bytes()).digest()
            assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == expected, path


def test_every_layer_pin_carries_a_hash() -> None:
    # Given the layer's requirements: pip installs them with --require-hashes
    text = (REPOSITORY / "requirements-lambda-layer.txt").read_text()
    requirements = [
        block for block in re.split(r"(?<!\\)\n", text) if block.strip() and not block.startswith("#")
    ]

    # Then each pinned requirement names the sha256 of its wheel
    assert len(requirements) == len(PACKAGES)
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}", r) for r in requirements), requirements


def test_synth_without_the_built_layer_fails_naming_make_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a checkout where `make install` has not built the layer folder
    monkeypatch.setattr(layer_module, "LAYER_DIR", tmp_path / "parsers-layer")

    # When a stack asks for the layer, Then synth stops and says what to run
    with pytest.raises(ParsersLayerMissing, match=r"make install"):
        parsers_layer(Stack(App()), lambda_.Runtime.PYTHON_3_14, lambda_.Architecture.X86_64)
