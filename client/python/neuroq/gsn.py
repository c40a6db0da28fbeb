"""perform_gsn through neuroqd, a drop-in for ``gsn.perform_gsn`` (GSN 1.2).

Same arguments and same result dict (names, shapes, dtypes) as the upstream
numpy path: ``mnN`` (1, N), ``mnS`` (1, N), ``ncsnr`` (N,), ``cN`` ``cS``
``cNb`` ``cSb`` (N, N) by default (``opt['returns']`` picks, including the
eigen outputs), ``shrinklevelN``/``shrinklevelD`` float, ``numiters`` int.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import numpy.typing as npt

from . import errors
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


def _params_from_opt(opt: Mapping[str, Any] | None
                     ) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
    """(the job's params, the names to return, opt's device) of gsn options."""
    opt = dict(opt or {})
    params: dict[str, Any] = {}
    backend = opt.get("backend", "auto")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', not {backend!r}")
    if "wantshrinkage" in opt:
        params["wantshrinkage"] = bool(opt["wantshrinkage"])
    if opt.get("shrinklevels") is not None:
        lv = np.asarray(opt["shrinklevels"], dtype=np.float64).ravel()
        params["shrinklevels"] = [float(x) for x in lv]
    want = opt.get("returns", DEFAULT_RETURNS)
    rets: tuple[str, ...] = (want,) if isinstance(want, str) else tuple(want)
    bad = [r for r in rets if r not in VALID_RETURNS]
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


def perform_gsn(data: npt.ArrayLike, opt: Mapping[str, Any] | None = None, *,
                client: Client | None = None, device: str | None = "auto",
                progress: bool | None = None, timeout: float | None = None
                ) -> dict[str, Any]:
    """Run GSN on neuroqd; returns the same dict as ``gsn.perform_gsn``.

    ``data``: units x conditions x trials (NaN marks missing trials).
    ``opt``: the gsn options (``wantshrinkage``, ``shrinklevels``, ``returns``,
    ``uneven``; ``wantverbose`` and ``backend`` accepted; ``device`` picks the
    daemon's device).  ``client``: a :class:`neuroq.Client` (default: a new one
    at the default URL).  ``progress``: show a progress bar (default: the
    ``wantverbose`` option, which defaults to on as in gsn).
    """
    x = np.asarray(data)
    if x.ndim != 3:
        raise ValueError("data must be a 3-D array (units x conditions x trials)")
    if x.shape[2] < 2:
        raise ValueError("Number of trials must be at least 2.")
    out_dtype = np.float32 if x.dtype == np.float32 else np.float64
    params, rets, opt_dev = _params_from_opt(opt)
    # device= wins when not 'auto'
    dev = _device(device if device not in (None, "auto") else (opt_dev or "auto"))
    if progress is None:
        progress = bool((opt or {}).get("wantverbose", 1))
    own = client is None
    cl = client if client is not None else Client()
    try:
        # float32 data is computed in float32, as gsn's numpy path does
        wire = np.ascontiguousarray(x, dtype="<f4" if out_dtype == np.float32 else "<f8")
        job = cl.submit("gsn", inputs={"data": wire},
                        params=params, device=dev)
        job.wait(progress=progress, timeout=timeout)
        res = job.result()
    finally:
        if own:
            cl.close()
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
