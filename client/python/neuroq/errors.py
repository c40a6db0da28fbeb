"""Exceptions of the neuroq client, one per daemon error code.

The table below mirrors ``proto/nq_error.h`` (the daemon's one table of
codes); ``tests/e2e/test_errors_table.py`` checks that they agree.

Every error the daemon reports is raised as an instance of the class for its
code, e.g. ``neuroq.errors.BadParam``, which is also an instance of its
family (``RequestError`` for codes 1-19, ``JobError`` 20-39,
``ResourceError`` 40-59, ``DaemonError`` 60-79) and of ``NeuroqError``.
Request errors are also ``ValueError`` s, so code written against
``gsn.perform_gsn`` that catches ``ValueError`` keeps working.
"""

from __future__ import annotations

# (name, code, text, class name) -- keep in step with proto/nq_error.h
TABLE = (
    ("EPROTO", 1, "malformed message", "Proto"),
    ("ETOOBIG", 2, "message too large", "TooBig"),
    ("EVERSION", 3, "unsupported protocol version", "Version"),
    ("EBADOP", 4, "unknown request", "BadOp"),
    ("EBADTYPE", 5, "unknown job type", "BadType"),
    ("EBADPARAM", 6, "invalid parameter", "BadParam"),
    ("EBADARRAY", 7, "invalid array", "BadArray"),
    ("EBADDATA", 8, "invalid data values", "BadData"),
    ("EBADDEVICE", 9, "unknown device", "BadDevice"),
    ("ENOJOB", 20, "no such job", "NoJob"),
    ("EPERM", 21, "permission denied", "PermissionDenied"),
    ("ESTATE", 22, "job is not in a state that allows this", "BadState"),
    ("ECANCELED", 23, "job was canceled", "Canceled"),
    ("EFAILED", 24, "job failed", "Failed"),
    ("ENOMEM", 40, "out of memory", "OutOfMemory"),
    ("ENODEV", 41, "no such device", "NoDevice"),
    ("EDEVICE", 42, "device error", "DeviceFault"),
    ("ETOOLARGE", 43, "job does not fit on any device", "TooLarge"),
    ("EIO", 44, "I/O error", "IOFailure"),
    ("ENOTSUP", 45, "not supported by this build", "NotSupported"),
    ("EINTERNAL", 60, "internal error", "Internal"),
    ("ESHUTDOWN", 61, "daemon is shutting down", "ShuttingDown"),
    ("ETIMEDOUT", 62, "timed out", "TimedOut"),
)

#: name -> code, e.g. CODES["EBADPARAM"] == 6
CODES = {name: code for name, code, _, _ in TABLE}
#: code -> name
NAMES = {code: name for name, code, _, _ in TABLE}
#: code -> the table's human text
TEXTS = {code: text for _, code, text, _ in TABLE}


class NeuroqError(Exception):
    """An error reported by neuroqd (or found by the client).

    Attributes: ``code`` (int, the wire code; None for client-side transport
    errors), ``name`` (``"EBADPARAM"``), ``message`` (the daemon's text).
    """

    code: int | None = None
    name: str = "EUNKNOWN"

    def __init__(self, code=None, name=None, message=""):
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name
        elif self.code in NAMES:
            self.name = NAMES[self.code]
        self.message = message
        super().__init__(code, self.name, message)

    def __str__(self):
        return f"{self.name}: {self.message}" if self.message else self.name

    def __repr__(self):
        return f"{type(self).__name__}({self.code!r}, {self.name!r}, {self.message!r})"


class RequestError(NeuroqError, ValueError):
    """The request was wrong (codes 1-19)."""


class JobError(NeuroqError):
    """The job, or its state, does not allow this (codes 20-39)."""


class ResourceError(NeuroqError):
    """Memory, device or I/O trouble (codes 40-59)."""


class DaemonError(NeuroqError):
    """The daemon itself (codes 60-79)."""


class Unreachable(NeuroqError, ConnectionError):
    """No daemon answers at the URL (client side; no wire code)."""

    name = "EUNREACHABLE"


def family(code):
    """The family class for a code."""
    if 1 <= code <= 19:
        return RequestError
    if 20 <= code <= 39:
        return JobError
    if 40 <= code <= 59:
        return ResourceError
    if 60 <= code <= 79:
        return DaemonError
    return NeuroqError


#: code -> exception class
BY_CODE = {}
_extra_bases = {"ETIMEDOUT": (TimeoutError,), "ENOMEM": (MemoryError,)}
for _name, _code, _text, _cls in TABLE:
    _k = type(_cls, (family(_code),) + _extra_bases.get(_name, ()),
              {"code": _code, "name": _name, "__doc__": f"{_name} ({_code}): {_text}.",
               "__module__": __name__})
    globals()[_cls] = _k
    BY_CODE[_code] = _k
del _name, _code, _text, _cls, _k

__all__ = ["NeuroqError", "RequestError", "JobError", "ResourceError",
           "DaemonError", "Unreachable", "CODES", "NAMES", "TEXTS", "TABLE",
           "BY_CODE", "from_reply", "error_for"] + [t[3] for t in TABLE]


def error_for(code, message="", name=None):
    """An exception instance for a wire code."""
    cls = BY_CODE.get(code) or family(code)
    return cls(code, name or NAMES.get(code, "EUNKNOWN"), message)


def from_reply(reply):
    """The exception for a failure reply map {ok: False, code, error, message}."""
    code = reply.get("code")
    if not isinstance(code, int):
        return Proto(1, "EPROTO", f"malformed error reply: {reply!r}")
    return error_for(code, str(reply.get("message", "")), reply.get("error"))
