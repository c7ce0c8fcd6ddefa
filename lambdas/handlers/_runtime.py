"""What every handler shares: Powertools objects, environment settings and AWS clients.

This is the only layer of the runtime code that reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from botocore.config import Config

logger = Logger()
tracer = Tracer()
metrics = Metrics()

#: boto3's own retries absorb brief throttling; longer outages surface as BedrockTransientError
#: and are retried by the state machine with back-off and jitter.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, user_agent_extra="bedrock-finetune")

#: Where the state machine puts the execution name, used as the Powertools correlation id.
CORRELATION_ID_PATH = "executionName"


def env(name: str, default: str | None = None) -> str:
    """A required setting from the function's environment (set by the CDK app)."""
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set; redeploy the stack")
    return value


def env_json(name: str, default: Any = None) -> Any:
    """A JSON-encoded setting from the function's environment."""
    raw = os.environ.get(name)
    return default if raw is None else json.loads(raw)


def client(service: str) -> Any:
    """A boto3 client; created per call so that tests and the local emulation control endpoints."""
    return boto3.client(service, config=_CLIENT_CONFIG)
