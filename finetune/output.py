"""What every deployment command shares: exit statuses, errors that say what to do, ``--json``.

Exit statuses: 0 done, 1 the thing failed (an invalid dataset, a failed run, an AWS error, a run
with no endpoint), 2 usage (a bad option, a missing file). With ``--json`` stdout holds exactly one
JSON document with ``schema_version``; a failure is ``{"schema_version", "command", "error"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

#: Bumped when a field of a command's JSON document changes meaning or goes away.
SCHEMA_VERSION = 1


class UsageError(Exception):
    """A bad argument or a missing local file: exit status 2."""


class CommandFailed(Exception):
    """The thing the command does failed: exit status 1, with a message that says what to do."""


def write_json(out: TextIO, command: str, document: Mapping[str, Any]) -> None:
    """One JSON document on ``out``, with ``schema_version`` and ``command`` first."""
    json.dump({"schema_version": SCHEMA_VERSION, "command": command, **document}, out, indent=2, default=str)
    out.write("\n")


def _aws_error(exc: Exception, endpoint: str | None) -> str | None:
    """A sentence for an AWS SDK error, or None when ``exc`` is not one."""
    try:
        from botocore.exceptions import (  # noqa: PLC0415 - the dataset commands never load botocore
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
        )
    except ModuleNotFoundError:
        return None
    if isinstance(exc, EndpointConnectionError):
        hint = " Is finetune local-server running there?" if endpoint else " Check your network and --region."
        return f"cannot reach {exc.kwargs.get('endpoint_url', endpoint)}.{hint}"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: configure them (aws configure, AWS_PROFILE) or pass --profile"
    if isinstance(exc, NoRegionError):
        return "no AWS Region: pass --region"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        hint = {
            "AccessDenied": " Ask for the permission, or use a profile that has it (--profile).",
            "AccessDeniedException": " Ask for the permission, or use a profile that has it (--profile).",
            "ExpiredToken": " Refresh your credentials.",
            "ExpiredTokenException": " Refresh your credentials.",
            "ThrottlingException": " Try again in a moment.",
        }.get(code, "")
        return f"{exc.operation_name} failed: {code}: {error.get('Message', exc)}.{hint}"
    return None


def run_command(
    name: str,
    body: Callable[[argparse.Namespace, TextIO], int],
    args: argparse.Namespace,
    out: TextIO | None = None,
) -> int:
    """Run ``body(args, out)`` (stdout by default); turn the errors above into a message (or JSON) and
    an exit status."""
    out, err = out or sys.stdout, sys.stderr
    as_json = bool(getattr(args, "json", False))
    try:
        return body(args, out)
    except UsageError as exc:
        message, status = str(exc), 2
    except CommandFailed as exc:
        message, status = str(exc), 1
    except KeyboardInterrupt:
        message, status = "interrupted; nothing was changed by the interruption itself", 1
    except Exception as exc:
        described = _aws_error(exc, getattr(args, "endpoint_url", None))
        if described is None:
            raise
        message, status = described, 1
    print(f"finetune {name}: {message}", file=err)
    if as_json:
        write_json(out, name, {"error": {"message": message, "exit_status": status}})
    return status
