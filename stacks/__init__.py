"""The CDK app: configuration, the stack, and one construct per capability."""

import os

# jsii (the CDK's Node process) prints a raw end-of-life banner on Node 20 each time the CDK loads.
# Every entry point that loads the CDK through this package (app.py, python -m iam_review, the
# local emulation) silences it, as the Makefile does; an explicit setting in the environment wins.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
