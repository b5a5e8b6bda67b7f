"""Errors the CLI reports as one line on stderr instead of a traceback (`mnas --debug` shows it).

Exit status 2: a mistake in what was asked (bad value, missing file): the message names the
value and says what to do. Exit status 1: the device, the device server (connection, token,
timeout) or the converter failed. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

USAGE_STATUS = 2
FAILURE_STATUS = 1
# Failures raised by parts the command may have imported: (module, class name). Looked up only in
# modules already imported, so classifying an error never imports JAX or TensorFlow.
_FAILURES = (("latency.devices.base", "DeviceError"), ("latency.export", "ExportError"),
             ("mnas_jax.search.loop", "ChildrenFailing"))


class UserError(Exception):
    """A mistake by the user: the message names the bad value and says what to do."""


def exit_status(error: BaseException) -> int | None:
    """The exit status for an error reported in one line, or None for a bug (traceback)."""
    failures: list[type] = [ConnectionError, PermissionError, TimeoutError]
    for module, name in _FAILURES:
        if module in sys.modules:
            failures.append(getattr(sys.modules[module], name))
    if isinstance(error, tuple(failures)):
        return FAILURE_STATUS
    if isinstance(error, (UserError, ValueError, FileNotFoundError)):
        return USAGE_STATUS
    return None


def one_line(error: BaseException) -> str:
    """The error's message on one line (device output tails are joined with ' | ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines) or type(error).__name__
