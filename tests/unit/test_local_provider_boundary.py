"""The emulated Provider framework is an object the cloud owns: it does not reach back into the cloud."""

from __future__ import annotations

import ast
from pathlib import Path

import finetune.local.provider


def test_the_provider_framework_imports_nothing_of_the_emulation():
    tree = ast.parse(Path(finetune.local.provider.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "moto.cloudformation.models" in imported  # the walk sees its imports
    assert not {module for module in imported if module and module.startswith("finetune")}
