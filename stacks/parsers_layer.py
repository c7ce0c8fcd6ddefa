"""The Lambda layer of compiled JSON parsers (msgspec, orjson) for the dataset validator.

``make install`` fetches the manylinux wheels pinned in ``requirements-lambda-layer.txt`` for the
functions' runtime and architecture into :data:`LAYER_DIR` with ``pip install --platform``: no
Docker, and the same bytes on any machine. Lambda adds a layer's ``python/`` folder to the
function's import path (https://docs.aws.amazon.com/lambda/latest/dg/python-layers.html).

Synth fails when the folder is missing, naming ``make install``, rather than deploying a validator
that would silently take the standard-library path (the same report, two to three times slower).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Built by ``make install``; git-ignored.
LAYER_DIR = REPO_ROOT / "build" / "parsers-layer"
#: The pinned wheels (versions and hashes).
REQUIREMENTS = REPO_ROOT / "requirements-lambda-layer.txt"
#: The packages the layer holds (import names).
PACKAGES = ("msgspec", "orjson")


class ParsersLayerMissing(RuntimeError):
    """The layer folder has not been built on this machine."""


def parsers_layer(
    scope: Construct, runtime: lambda_.Runtime, architecture: lambda_.Architecture
) -> lambda_.LayerVersion:
    """The layer from :data:`LAYER_DIR`, for one runtime and architecture (those of its wheels)."""
    missing = [name for name in PACKAGES if not (LAYER_DIR / "python" / name).is_dir()]
    if missing:
        raise ParsersLayerMissing(
            f"{LAYER_DIR} lacks {', '.join(missing)}: run `make install` (it fetches the validator's "
            f"compiled parsers for the Lambda runtime, pinned in {REQUIREMENTS.name})"
        )
    return lambda_.LayerVersion(
        scope,
        "ParsersLayer",
        description=f"msgspec and orjson for the dataset validator (wheels of {REQUIREMENTS.name})",
        code=lambda_.Code.from_asset(str(LAYER_DIR), exclude=["**/__pycache__", "**/*.pyc"]),
        compatible_runtimes=[runtime],
        compatible_architectures=[architecture],
    )
