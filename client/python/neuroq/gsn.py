"""perform_gsn through neuroqd, a drop-in for ``gsn.perform_gsn`` (GSN 1.2).

Same arguments and same result dict (names, shapes) as the upstream numpy
path: ``mnN`` (1, N), ``mnS`` (1, N), ``ncsnr`` (N,), ``cN`` ``cS`` ``cNb``
``cSb`` (N, N) by default (``opt['returns']`` picks, including the eigen
outputs), ``shrinklevelN``/``shrinklevelD`` float, ``numiters`` int.
GSN 1.2's warnings arrive as ``warnings.warn`` (UserWarning, its words);
where it raises ``AssertionError`` the neuroq error is one too.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
import numpy.typing as npt

from . import errors
from ._jobdoc import params_doc
from .client import Client, _device

DEFAULT_RETURNS = ("cN", "cS", "cNb", "cSb")
VALID_RETURNS = DEFAULT_RETURNS + ("eigvecs_signal", "eigvals_signal",
                                   "eigvecs_difference", "eigvals_difference")
ALWAYS = ("mnN", "mnS", "ncsnr", "shrinklevelN", "shrinklevelD", "numiters")
# opt keys the daemon gets as params
_PASSED = ("wantshrinkage", "shrinklevels", "returns", "uneven")
# opt keys of gsn 1.2 that mean nothing here: accepted and ignored
_IGNORED = ("wantverbose", "backend", "eigh_device", "mode", "ncsims", "wantfig",
            "nctrials", "rdmfun", "comparefun", "scs", "splitmode", "simchunk",
            "simthresh", "maxsimnum")
# the start of the gsn job's messages where GSN 1.2 raises AssertionError
# (daemon/jobs/gsn/gsn.c: gsn_check, check_split)
_ASSERTS = ("all conditions must have at least 1 valid trial",
            "no condition with at least two valid observations",
            "validation data did not have any conditions with at least two observations")
# numpy dtype kinds that are real numbers
_REAL = "biuf"
_KIND_NAMES = {"c": "complex", "U": "string", "S": "bytes", "O": "object",
               "M": "datetime", "m": "timedelta", "V": "structured"}


def _params_from_opt(opt: Mapping[str, Any] | None
                     ) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
    """(the job's params, the names to return, opt's device) of gsn options.

    A key set to None means its default, as GSN 1.2 does for
    ``wantshrinkage``, ``wantverbose``, ``returns`` and ``shrinklevels``."""
    opt = {k: v for k, v in (opt or {}).items() if v is not None}
    params: dict[str, Any] = {}
    backend = opt.get("backend", "auto")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', not {backend!r}")
    if "wantshrinkage" in opt:
        params["wantshrinkage"] = bool(opt["wantshrinkage"])
    if "shrinklevels" in opt:
        lv = np.asarray(opt["shrinklevels"])
        if lv.dtype.kind not in _REAL:
            raise errors.BadParam(6, "EBADPARAM",
                                  f"shrinklevels must be numbers in [0, 1], not a "
                                  f"{_KIND_NAMES.get(lv.dtype.kind, str(lv.dtype))} array")
        if lv.ndim > 1:
            raise errors.BadParam(6, "EBADPARAM",
                                  f"shrinklevels must be a 1-D sequence of levels in "
                                  f"[0, 1], not an array of shape {lv.shape}")
        params["shrinklevels"] = [float(x) for x in lv.astype(np.float64).ravel()]
    want = opt.get("returns", DEFAULT_RETURNS)
    rets: tuple[str, ...] = (want,) if isinstance(want, str) else tuple(want)
    bad = [r for r in rets if not isinstance(r, str) or r not in VALID_RETURNS]
    if bad:
        raise ValueError(f"unknown returns {bad}; valid: {list(VALID_RETURNS)}")
    params["returns"] = list(rets)
    if "uneven" in opt:
        params["uneven"] = str(opt["uneven"])
    for k, v in opt.items():
        if k in _PASSED or k in _IGNORED or k == "device":
            continue
        params[k] = v  # the daemon says EBADPARAM if it does not know it
    return params, rets, opt.get("device")


def _check_data(data: npt.ArrayLike) -> np.ndarray:
    """data as an array of real numbers, 3-D, no empty dimension, T >= 2."""
    x = np.asarray(data)
    if x.dtype.kind not in _REAL:
        what = _KIND_NAMES.get(x.dtype.kind, str(x.dtype))
        raise errors.BadArray(7, "EBADARRAY",
                              f"data must be real numbers (float64 or float32, NaN for "
                              f"missing trials), not a {what} array ({x.dtype})")
    if x.ndim != 3:
        raise ValueError("data must be a 3-D array (units x conditions x trials)")
    if x.size == 0:
        raise errors.BadData(8, "EBADDATA",
                             f"data is empty: shape {x.shape} (units x conditions x "
                             f"trials; GSN needs at least 1 unit, 2 conditions and 2 "
                             f"trials)")
    if x.shape[2] < 2:
        raise ValueError("Number of trials must be at least 2.")
    return x


def perform_gsn(data: npt.ArrayLike, opt: Mapping[str, Any] | None = None, *,
                client: Client | None = None, device: str | None = "auto",
                progress: bool | None = None, timeout: float | None = None
                ) -> dict[str, Any]:
    """Run GSN on neuroqd; returns the same dict as ``gsn.perform_gsn``.

    ``data``: units x conditions x trials of real numbers (NaN marks missing
    trials); float32 data gives float32 outputs, every other real dtype
    float64.  ``opt``: the gsn options (``wantshrinkage``, ``shrinklevels``,
    ``returns``, ``uneven``; ``wantverbose`` and ``backend`` accepted;
    ``device`` picks the daemon's device; None means the default).
    ``client``: a :class:`neuroq.Client` (default: a new one at the default
    URL).  ``progress``: show a progress bar (default: the ``wantverbose``
    option, which defaults to on as in gsn).

    GSN 1.2's warnings (all covariance matrices singular, ntrialBC lopsided,
    the missing-units fallbacks) are issued with ``warnings.warn``
    (UserWarning).  Where GSN 1.2 raises ``AssertionError`` (a condition
    without a valid trial; no condition with two valid trials among the
    training or the held-out conditions) the neuroq error is also an
    ``AssertionError``.
    """
    x = _check_data(data)
    out_dtype = np.float32 if x.dtype == np.float32 else np.float64
    params, rets, opt_dev = _params_from_opt(opt)
    # device= wins when not 'auto'
    dev = _device(device if device not in (None, "auto") else (opt_dev or "auto"))
    if progress is None:
        verbose = (opt or {}).get("wantverbose")
        progress = bool(1 if verbose is None else verbose)
    own = client is None
    cl = client if client is not None else Client()
    try:
        # float32 data is computed in float32, as gsn's numpy path does
        wire = np.ascontiguousarray(x, dtype="<f4" if out_dtype == np.float32 else "<f8")
        job = cl.submit("gsn", inputs={"data": wire},
                        params=params, device=dev)
        job.wait(progress=progress, timeout=timeout)
        res = job.result()
    except errors.BadData as e:
        if e.message.startswith(_ASSERTS):
            raise errors.as_assertion(e) from None
        raise
    finally:
        if own:
            cl.close()
    for w in res.get("warnings") or ():
        warnings.warn(str(w), UserWarning, stacklevel=2)
    out: dict[str, Any] = {}
    for k in ("mnN", "cN", "cNb", "shrinklevelN", "shrinklevelD", "mnS", "cS", "cSb",
              "ncsnr", "numiters") + VALID_RETURNS[4:]:
        if k not in res or (k not in ALWAYS and k not in rets):
            continue
        v = res[k]
        if k == "numiters":
            v = int(v)
        elif k in ("shrinklevelN", "shrinklevelD"):
            v = float(v)
        elif isinstance(v, np.ndarray):
            if v.dtype != out_dtype:
                v = v.astype(out_dtype)
            if k in ("mnN", "mnS"):
                v = v.reshape(1, -1)  # gsn's (1, N) rows
            elif k == "ncsnr":
                v = v.reshape(-1)
        out[k] = v
    missing = [k for k in ALWAYS + rets if k not in out]
    if missing:
        raise errors.Internal(60, "EINTERNAL", f"the daemon's result lacks {missing}")
    return out


# help(perform_gsn) shows the gsn job's parameter table (the daemon's own)
perform_gsn.__doc__ = (perform_gsn.__doc__ or "") + "\n" + params_doc("gsn")
