"""Shared fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bedrock_finetune.catalog import ModelSpec
from tests.unit.dataset_builders import small_model


@pytest.fixture
def small_model_factory() -> Callable[..., ModelSpec]:
    """Claude 3 Haiku's spec with some limits replaced (``small_model_factory(max_train_bytes=1024)``)."""
    return small_model
