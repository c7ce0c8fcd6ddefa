"""Reuse boto3 clients inside the emulation, as a warm Lambda execution environment reuses its own.

The handlers create their clients per call (``handlers._runtime.client``), and moto's state machine
interpreter creates a Lambda client for every task it runs. Creating a client costs tens of
milliseconds of CPU, which, with many runs at once (the training queue's scale test), becomes most of
the emulation's time. While :func:`reused_clients` is open, ``boto3.client`` returns the client it made
before for the same arguments and the same environment (endpoint, region, credentials); clients are
thread-safe. Nothing outlives the context, so no client outlives the emulation it was made for.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3

#: The environment a client reads when it is created (the handlers' region and endpoint, and keys).
_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


def _config_key(config: Any) -> Any:
    options = getattr(config, "_user_provided_options", None)
    return None if config is None else repr(sorted(options.items())) if options is not None else id(config)


@contextlib.contextmanager
def reused_clients() -> Iterator[None]:
    """``boto3.client`` hands out one client per arguments and environment while the context is open."""
    original = boto3.client
    clients: dict[Any, Any] = {}
    lock = threading.Lock()

    def client(*args: Any, **kwargs: Any) -> Any:
        key = (
            args,
            tuple(sorted((k, repr(v)) for k, v in kwargs.items() if k != "config")),
            _config_key(kwargs.get("config")),
            tuple(os.environ.get(name) for name in _ENVIRONMENT),
        )
        with lock:
            found = clients.get(key)
        if found is not None:
            return found
        # Created outside the lock: creating a client may wait for a running handler (see
        # lambda_runtime's proxy guard), which may itself be asking for a client.
        made = original(*args, **kwargs)
        with lock:
            return clients.setdefault(key, made)

    with mock.patch.object(boto3, "client", client):
        yield
