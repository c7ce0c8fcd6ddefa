"""Run the real pipeline offline: the synthesized template and the real handlers, on moto.

``finetune local RUN_DIR`` and ``make demo`` use :mod:`finetune.local.runner`; ``finetune
local-server`` serves the same emulation over HTTP (:mod:`finetune.local.server`). Everything
that reaches into moto's internals lives here, against the exact moto version pinned in
requirements-dev.txt.

The emulation is optional: it needs the development dependencies (moto, and the CDK to
synthesize). Without them, importing this package raises :class:`ModuleNotFoundError` naming
what is missing, and the ``finetune`` command goes on without ``local`` and ``local-server``.
"""

from __future__ import annotations

import importlib.util

#: Top-level modules the emulation imports beyond the CLI's own (found, not imported, here).
DEPENDENCIES = ("moto", "aws_cdk", "cdk_nag")


def missing_dependencies() -> list[str]:
    """The emulation's dependencies that are not installed."""
    return [name for name in DEPENDENCIES if importlib.util.find_spec(name) is None]


if _missing := missing_dependencies():
    raise ModuleNotFoundError(
        f"the local emulation needs {', '.join(_missing)}: pip install -r requirements-dev.txt",
        name=_missing[0],
    )
