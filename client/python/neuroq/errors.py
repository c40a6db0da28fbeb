"""Exceptions of the neuroq client, one per daemon error code.

The classes below mirror ``proto/nq_error.h`` (the daemon's one table of
codes), one written-out class per code with its ``code``, ``name`` and the
table's ``text``; ``tests/e2e/test_errors_table.py`` checks that they agree.

Every error the daemon reports is raised as an instance of the class for its
code, e.g. ``neuroq.errors.BadParam``, which is also an instance of its
family (``RequestError`` for codes 1-19, ``JobError`` 20-39,
``ResourceError`` 40-59, ``DaemonError`` 60-79) and of ``NeuroqError``.
Request errors are also ``ValueError`` s, so code written against
``gsn.perform_gsn`` that catches ``ValueError`` keeps working; where GSN 1.2
raises ``AssertionError``, ``neuroq.perform_gsn`` raises the same error made
an ``AssertionError`` too (:func:`as_assertion`, :class:`UpstreamAssertion`).
"""

from __future__ import annotations

from typing import Any, Mapping


class NeuroqError(Exception):
    """An error reported by neuroqd (or found by the client).

    Attributes: ``code`` (int, the wire code; None for client-side transport
    errors), ``name`` (``"EBADPARAM"``), ``message`` (the daemon's text).
    The classes of the codes also carry ``text``, the table's human text.
    """

    code: int | None = None
    name: str = "EUNKNOWN"
    text: str = ""

    def __init__(self, code: int | None = None, name: str | None = None,
                 message: str = "") -> None:
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name
        elif self.code is not None and self.code in NAMES:
            self.name = NAMES[self.code]
        self.message = message
        super().__init__(code, self.name, message)

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.name!r}, {self.message!r})"


# ---- the families


class RequestError(NeuroqError, ValueError):
    """The request was wrong (codes 1-19)."""


class JobError(NeuroqError):
    """The job, or its state, does not allow this (codes 20-39)."""


class ResourceError(NeuroqError):
    """Memory, device or I/O trouble (codes 40-59)."""


class DaemonError(NeuroqError):
    """The daemon itself (codes 60-79)."""


class UpstreamAssertion(AssertionError):
    """Mixin: an error where the reference implementation raises
    ``AssertionError`` (e.g. GSN 1.2 on a condition without a valid trial).

    :func:`as_assertion` makes such an error an instance of both its code's
    class and ``AssertionError``, so ``except AssertionError`` code written
    against the reference keeps working.
    """


_ASSERTION_CLASSES: dict[type[NeuroqError], type[NeuroqError]] = {}


def as_assertion(err: NeuroqError) -> NeuroqError:
    """The same error (code, name, message) as an instance of a subclass of
    its class and :class:`UpstreamAssertion`; e.g. ``BadData`` becomes
    ``BadDataAssertion``, still a ``BadData`` and a ``ValueError``."""
    cls = type(err)
    if isinstance(err, UpstreamAssertion):
        return err
    sub = _ASSERTION_CLASSES.get(cls)
    if sub is None:
        sub = type(cls.__name__ + "Assertion", (cls, UpstreamAssertion),
                   {"__doc__": f"{cls.__name__} where the reference asserts.",
                    "__module__": __name__})
        _ASSERTION_CLASSES[cls] = sub
    return sub(err.code, err.name, err.message)


class Unreachable(NeuroqError, ConnectionError):
    """No daemon answers at the URL (client side; no wire code)."""

    name = "EUNREACHABLE"


# ---- one class per code of proto/nq_error.h, in its order


class Proto(RequestError):
    """EPROTO (1): malformed message."""

    code, name, text = 1, "EPROTO", "malformed message"


class TooBig(RequestError):
    """ETOOBIG (2): message too large."""

    code, name, text = 2, "ETOOBIG", "message too large"


class Version(RequestError):
    """EVERSION (3): unsupported protocol version."""

    code, name, text = 3, "EVERSION", "unsupported protocol version"


class BadOp(RequestError):
    """EBADOP (4): unknown request."""

    code, name, text = 4, "EBADOP", "unknown request"


class BadType(RequestError):
    """EBADTYPE (5): unknown job type."""

    code, name, text = 5, "EBADTYPE", "unknown job type"


class BadParam(RequestError):
    """EBADPARAM (6): invalid parameter."""

    code, name, text = 6, "EBADPARAM", "invalid parameter"


class BadArray(RequestError):
    """EBADARRAY (7): invalid array."""

    code, name, text = 7, "EBADARRAY", "invalid array"


class BadData(RequestError):
    """EBADDATA (8): invalid data values."""

    code, name, text = 8, "EBADDATA", "invalid data values"


class BadDevice(RequestError):
    """EBADDEVICE (9): invalid device name."""

    code, name, text = 9, "EBADDEVICE", "invalid device name"


class NoJob(JobError):
    """ENOJOB (20): no such job."""

    code, name, text = 20, "ENOJOB", "no such job"


class PermissionDenied(JobError):
    """EPERM (21): permission denied."""

    code, name, text = 21, "EPERM", "permission denied"


class BadState(JobError):
    """ESTATE (22): job is not in a state that allows this."""

    code, name, text = 22, "ESTATE", "job is not in a state that allows this"


class Canceled(JobError):
    """ECANCELED (23): job was canceled."""

    code, name, text = 23, "ECANCELED", "job was canceled"


class Failed(JobError):
    """EFAILED (24): job failed."""

    code, name, text = 24, "EFAILED", "job failed"


class OutOfMemory(ResourceError, MemoryError):
    """ENOMEM (40): out of memory."""

    code, name, text = 40, "ENOMEM", "out of memory"


class NoDevice(ResourceError):
    """ENODEV (41): no such device on this server."""

    code, name, text = 41, "ENODEV", "no such device on this server"


class DeviceFault(ResourceError):
    """EDEVICE (42): device error."""

    code, name, text = 42, "EDEVICE", "device error"


class TooLarge(ResourceError):
    """ETOOLARGE (43): job does not fit on any device."""

    code, name, text = 43, "ETOOLARGE", "job does not fit on any device"


class IOFailure(ResourceError):
    """EIO (44): I/O error."""

    code, name, text = 44, "EIO", "I/O error"


class NotSupported(ResourceError):
    """ENOTSUP (45): not supported by this build."""

    code, name, text = 45, "ENOTSUP", "not supported by this build"


class QuotaExceeded(ResourceError):
    """EQUOTA (46): user quota exceeded."""

    code, name, text = 46, "EQUOTA", "user quota exceeded"


class NoSpace(ResourceError):
    """ENOSPACE (47): not enough free disk space."""

    code, name, text = 47, "ENOSPACE", "not enough free disk space"


class Busy(ResourceError):
    """EBUSY (48): daemon is busy, retry later."""

    code, name, text = 48, "EBUSY", "daemon is busy, retry later"


class Internal(DaemonError):
    """EINTERNAL (60): internal error."""

    code, name, text = 60, "EINTERNAL", "internal error"


class ShuttingDown(DaemonError):
    """ESHUTDOWN (61): daemon is shutting down."""

    code, name, text = 61, "ESHUTDOWN", "daemon is shutting down"


class TimedOut(DaemonError, TimeoutError):
    """ETIMEDOUT (62): timed out."""

    code, name, text = 62, "ETIMEDOUT", "timed out"


#: the classes of the codes, in the order of proto/nq_error.h
CLASSES: tuple[type[NeuroqError], ...] = (
    Proto, TooBig, Version, BadOp, BadType, BadParam, BadArray, BadData, BadDevice,
    NoJob, PermissionDenied, BadState, Canceled, Failed,
    OutOfMemory, NoDevice, DeviceFault, TooLarge, IOFailure, NotSupported,
    QuotaExceeded, NoSpace, Busy,
    Internal, ShuttingDown, TimedOut,
)


def _code(cls: type[NeuroqError]) -> int:
    assert cls.code is not None, cls
    return cls.code


#: (name, code, text, class name) per code, as in proto/nq_error.h
TABLE: tuple[tuple[str, int, str, str], ...] = tuple(
    (c.name, _code(c), c.text, c.__name__) for c in CLASSES)
#: name -> code, e.g. CODES["EBADPARAM"] == 6
CODES: dict[str, int] = {name: code for name, code, _, _ in TABLE}
#: code -> name
NAMES: dict[int, str] = {code: name for name, code, _, _ in TABLE}
#: code -> the table's human text
TEXTS: dict[int, str] = {code: text for _, code, text, _ in TABLE}
#: code -> exception class
BY_CODE: dict[int, type[NeuroqError]] = {_code(c): c for c in CLASSES}

__all__ = ["NeuroqError", "RequestError", "JobError", "ResourceError",
           "DaemonError", "Unreachable", "UpstreamAssertion", "as_assertion", "CODES", "NAMES", "TEXTS", "TABLE",
           "BY_CODE", "CLASSES", "family", "from_reply", "error_for"] + \
    [c.__name__ for c in CLASSES]


def family(code: int) -> type[NeuroqError]:
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


def error_for(code: int, message: str = "", name: str | None = None) -> NeuroqError:
    """An exception instance for a wire code."""
    cls = BY_CODE.get(code) or family(code)
    return cls(code, name or NAMES.get(code, "EUNKNOWN"), message)


def from_reply(reply: Mapping[str, Any]) -> NeuroqError:
    """The exception for a failure reply map {ok: False, code, error, message}."""
    code = reply.get("code")
    if not isinstance(code, int):
        return Proto(1, "EPROTO", f"malformed error reply: {reply!r}")
    return error_for(code, str(reply.get("message", "")), reply.get("error"))
