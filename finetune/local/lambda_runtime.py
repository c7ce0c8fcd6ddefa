"""Run the deployed Lambda functions' real handlers in-process, the way the Lambda runtime would.

moto's ``LambdaSimpleBackend.invoke`` echoes the payload; this replaces it. For each invocation it
finds the function moto created from the template, loads its ``Handler`` from the code asset the
template points at, sets the function's environment variables (plus what the Lambda runtime adds)
while the handler runs, passes a Lambda context, and returns the result. An exception becomes the
Lambda runtime's error response (``X-Amz-Function-Error: Unhandled`` and
``{"errorType": <exception class name>, "errorMessage", ...}``), so the state machine's Retry and
Catch rules see the same error names as on AWS.

``os.environ`` is process-wide, so invocations run one at a time, and only the variables a
function needs changed are changed (other threads keep seeing the credentials and the region).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

from moto.awslambda_simple.models import LambdaSimpleBackend

#: What the Lambda runtime sets besides the function's own variables. Tracing is off locally:
#: there is no X-Ray daemon to send segments to.
RUNTIME_ENV = {
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class LambdaContext:
    """The context object the Lambda runtime passes to a handler (the fields Powertools reads)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """One handler run: what it was given, what it returned or raised, and what it logged."""

    function_name: str
    handler: str
    event: Any
    result: Any
    error_type: str | None
    logs: str
    seconds: float


class _ThreadStream(io.TextIOBase):
    """sys.stdout/sys.stderr stand-in: a thread that is running a handler writes to its own buffer.

    Powertools' Logger and Metrics keep the stream they find when the handlers are first imported,
    so there is one instance per process for stdout and one for stderr, re-pointed at the current
    ``sys.stdout`` / ``sys.stderr`` each time a runtime is installed.
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._local = threading.local()

    def retarget(self, target: TextIO) -> None:
        if target is not self:
            self._target = target

    def capture(self, buffer: io.StringIO | None) -> None:
        self._local.buffer = buffer

    def write(self, s: str) -> int:
        buffer = getattr(self._local, "buffer", None)
        return (buffer or self._target).write(s)

    def flush(self) -> None:
        buffer = getattr(self._local, "buffer", None)
        (buffer or self._target).flush()

    def isatty(self) -> bool:
        return False


_STDOUT = _ThreadStream(sys.stdout)
_STDERR = _ThreadStream(sys.stderr)


class LambdaRuntime:
    """Runs handlers of functions whose code asset is one of ``code_roots`` (asset S3 key -> folder)."""

    def __init__(
        self,
        code_roots: Mapping[str, Path],
        region: str,
        extra_env: Mapping[str, str] | None = None,
        on_invocation: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.code_roots = dict(code_roots)
        self.region = region
        self.extra_env = dict(extra_env or {})
        self.on_invocation = on_invocation
        self.invocations: list[Invocation] = []
        self.lock = threading.RLock()

    # -- moto hook -------------------------------------------------------------------------------
    def invoke(  # noqa: PLR0917 - moto's LambdaSimpleBackend.invoke signature
        self,
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        """Replacement for ``LambdaSimpleBackend.invoke``: run the function's real handler."""
        fn = backend.get_function(function_name, qualifier)
        raw = body.decode() if isinstance(body, bytes) else (body or "{}")
        event = json.loads(raw) if raw else {}
        result, error = self.run(fn, event)
        if error is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error).encode()
        return json.dumps(result).encode()

    def run(self, fn: Any, event: Any) -> tuple[Any, dict[str, Any] | None]:
        """Run ``fn``'s handler on ``event``; returns (result, None) or (None, Lambda error body)."""
        request_id = str(uuid.uuid4())
        name = fn.function_name
        buffer = io.StringIO()
        started = time.time()
        result: Any = None
        error: dict[str, Any] | None = None
        with self.lock, self._environment(fn), self._captured(buffer):
            try:
                handler = self._load(fn)
            except Exception as exc:
                module = str(fn.handler).rsplit(".", 1)[0]
                error = _error_body(
                    "Runtime.ImportModuleError", f"Unable to import module '{module}': {exc}", exc, request_id
                )
            else:
                context = LambdaContext(
                    function_name=name,
                    function_version="$LATEST",
                    invoked_function_arn=fn.function_arn,
                    memory_limit_in_mb=int(fn.memory_size),
                    aws_request_id=request_id,
                    log_group_name=f"/aws/lambda/{name}",
                    log_stream_name=f"local/{request_id}",
                    deadline=started + float(fn.timeout),
                )
                try:
                    result = handler(event, context)
                    json.dumps(result)
                except Exception as exc:
                    error = _error_body(type(exc).__name__, str(exc), exc, request_id)
        record = Invocation(
            function_name=name,
            handler=str(fn.handler),
            event=event,
            result=result,
            error_type=error["errorType"] if error else None,
            logs=buffer.getvalue(),
            seconds=time.time() - started,
        )
        self.invocations.append(record)
        if self.on_invocation:
            self.on_invocation(record)
        return (None, error) if error else (result, None)

    # -- helpers -----------------------------------------------------------------------------------
    def _code_root(self, fn: Any) -> Path:
        key = (fn.code or {}).get("S3Key", "")
        root = self.code_roots.get(key)
        if root is None:
            raise RuntimeError(f"function {fn.function_name}: no local code for asset {key!r}")
        return root

    def _load(self, fn: Any) -> Callable[[Any, Any], Any]:
        root = self._code_root(fn)
        module_name, _, attr = str(fn.handler).rpartition(".")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        module = importlib.import_module(module_name)
        location = Path(getattr(module, "__file__", "") or "").resolve()
        if root.resolve() not in location.parents:
            raise RuntimeError(f"{module_name} was imported from {location}, not from the asset {root}")
        handler: Callable[[Any, Any], Any] = getattr(module, attr)
        return handler

    @contextlib.contextmanager
    def _environment(self, fn: Any) -> Iterator[None]:
        saved = dict(os.environ)
        name = fn.function_name
        env = {
            **RUNTIME_ENV,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "LAMBDA_TASK_ROOT": str(self._code_root(fn)) if fn.code else "",
            **self.extra_env,
            **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        }
        # Only the variables that differ are set, and only those are restored: other threads (the
        # interpreter of another execution, the runner) create clients meanwhile, and must never
        # see the environment without its credentials and region (botocore would then look for
        # credentials in the instance metadata service, reading os.environ as it changes).
        _apply(env)
        try:
            yield
        finally:
            for key in set(os.environ) - set(saved):
                os.environ.pop(key, None)
            _apply(saved)

    @contextlib.contextmanager
    def _captured(self, buffer: io.StringIO) -> Iterator[None]:
        streams = (_STDOUT, _STDERR)
        for stream in streams:
            stream.capture(buffer)
        try:
            yield
        finally:
            for stream in streams:
                stream.capture(None)

    @contextlib.contextmanager
    def installed(self) -> Iterator[LambdaRuntime]:
        """Route moto's Lambda invocations to this runtime, with handler output captured."""
        runtime = self

        def invoke(  # noqa: PLR0917
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            return runtime.invoke(backend, function_name, qualifier, body, headers, response_headers)

        original_proxies = urllib.request.getproxies_environment

        def getproxies_environment() -> dict[str, str]:
            # botocore reads the proxy variables (by iterating over os.environ) whenever a client is
            # created: in another thread while a handler's variables are set or unset, iterating
            # would raise KeyError. Reading waits until no handler runs (or is the handler's own).
            with runtime.lock:
                return original_proxies()

        _STDOUT.retarget(sys.stdout)
        _STDERR.retarget(sys.stderr)
        with (
            mock.patch.object(urllib.request, "getproxies_environment", getproxies_environment),
            mock.patch.object(LambdaSimpleBackend, "invoke", invoke),
            mock.patch.object(sys, "stdout", _STDOUT),
            mock.patch.object(sys, "stderr", _STDERR),
        ):
            yield self


def _apply(values: Mapping[str, str]) -> None:
    """Set the variables of ``values`` that differ in ``os.environ``, one by one."""
    for key, value in values.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _error_body(error_type: str, message: str, exc: BaseException, request_id: str) -> dict[str, Any]:
    return {
        "errorType": error_type,
        "errorMessage": message,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }
