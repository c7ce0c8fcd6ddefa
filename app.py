#!/usr/bin/env python3
"""CDK entry point: typed configuration from context, the pipeline stack, cdk-nag on every synth."""

from __future__ import annotations

import os
import sys

from stacks.application import build_app
from stacks.config import ConfigError

try:
    app = build_app(environment=os.environ)[0]
except ConfigError as exc:
    sys.exit(f"Configuration error (cdk.json context or -c): {exc}")
app.synth()
