"""neuroq.spikesort: Kilosort-style spike sorting of a raw recording on neuroqd.

    res = neuroq.spikesort("/data/rec.bin", probe="/data/chanmap.json",
                           n_channels=385, sample_rate=30000,
                           output_dir="/data/rec_phy")
    res["n_units"], res["output_dir"]        # a phy folder

The recording is a flat int16 file, samples x channels (SpikeGLX's .bin; with
its .meta beside it n_channels and sample_rate may be left out).  The daemon
reads the recording and the probe file and writes the phy folder itself, so
every path is one the daemon can see: paths are made absolute here, and the
daemon's user needs read access to the inputs and write access to
output_dir.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any, Literal, Mapping, TypeVar, Union, overload

import numpy as np

from . import errors
from ._jobdoc import params_doc
from .client import Client, Job, _device

#: keys of the job that spikesort() sets from its own arguments
_OWN = ("recording", "n_channels", "sample_rate", "probe", "output_dir")

#: a path as the functions here take it
StrPath = Union[str, "os.PathLike[str]"]
_P = TypeVar("_P", str, "os.PathLike[str]")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def probe_to_dict(probe: Any) -> dict[str, Any]:
    """A probe as the dict the daemon reads: a Kilosort channel map
    (chanMap/chanMap0ind, xc, yc, kcoords, connected) or probeinterface's
    format ({"probes": [...]}) given as a dict, or a probeinterface
    ``Probe``/``ProbeGroup`` object (wired: device_channel_indices set)."""
    if isinstance(probe, dict):
        return probe
    group: Any
    if hasattr(probe, "get_global_device_channel_indices") or hasattr(probe, "probes"):
        group = probe  # a ProbeGroup
    elif hasattr(probe, "device_channel_indices"):
        from probeinterface import ProbeGroup  # only a Probe object gets here

        group = ProbeGroup()
        group.add_probe(probe.copy() if hasattr(probe, "copy") else probe)
        if probe.device_channel_indices is not None:
            group.probes[0].set_device_channel_indices(probe.device_channel_indices)
    else:
        raise TypeError("probe must be a path, a dict (Kilosort channel map or "
                        "probeinterface JSON) or a probeinterface Probe/ProbeGroup, "
                        f"not {type(probe).__name__}")
    for i, p in enumerate(group.probes):
        if p.device_channel_indices is None:
            raise ValueError(f"probe {i} is not wired: call probe.set_device_channel_indices"
                             "(rows of the recording) first")
    d: dict[str, Any] = group.to_dict(array_as_list=True)
    return d


def write_probe(probe: Any, path: _P) -> _P:
    """Write probe (see :func:`probe_to_dict`) as JSON at path; returns path."""
    d = probe_to_dict(probe)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(d, f, default=_json_default)
    os.chmod(tmp, 0o644)  # the daemon's user reads it
    os.replace(tmp, path)
    return path


def _probe_path(probe: Any, output_dir: StrPath | None
                ) -> tuple[str | None, str | None]:
    """(path the daemon reads, temp file to remove afterwards or None)."""
    if probe is None:
        return None, None
    if isinstance(probe, (str, os.PathLike)):
        return os.path.abspath(os.fspath(probe)), None
    if output_dir is not None:
        # beside the phy folder, where the user looks for it later
        out = os.path.abspath(os.fspath(output_dir)).rstrip(os.sep)
        parent = os.path.dirname(out) or os.sep
        os.makedirs(parent, exist_ok=True)
        return write_probe(probe, out + ".probe.json"), None
    fd, path = tempfile.mkstemp(prefix="neuroq-probe-", suffix=".json")
    os.close(fd)
    return write_probe(probe, path), path


def _job_params(recording_path: StrPath, probe_path: str | None,
                params: Mapping[str, Any] | None, output_dir: StrPath | None,
                n_channels: int | None, sample_rate: float | None) -> dict[str, Any]:
    ps = dict(params or {})
    given: dict[str, Any] = {"n_channels": n_channels, "sample_rate": sample_rate}
    for k, v in given.items():
        if v is None:
            continue
        if k in ps and ps[k] != v:
            raise ValueError(f"{k} given twice: {v!r} and params[{k!r}] = {ps[k]!r}")
        ps[k] = v
    for k in ("recording", "probe", "output_dir"):
        if k in ps:
            raise ValueError(f"give {k} as spikesort's argument, not in params")
    ps["recording"] = os.path.abspath(os.fspath(recording_path))
    if probe_path is not None:
        ps["probe"] = probe_path
    if output_dir is not None:
        ps["output_dir"] = os.path.abspath(os.fspath(output_dir))
    if "n_channels" in ps:
        ps["n_channels"] = int(ps["n_channels"])
    if "sample_rate" in ps:
        ps["sample_rate"] = float(ps["sample_rate"])
    return ps


@overload
def spikesort(recording_path: StrPath, probe: Any = ...,
              params: Mapping[str, Any] | None = ..., output_dir: StrPath | None = ...,
              *, n_channels: int | None = ..., sample_rate: float | None = ...,
              device: str | None = ..., client: Client | None = ..., wait: Literal[True] = ...,
              progress: bool = ..., timeout: float | None = ..., priority: int = ...
              ) -> dict[str, Any]:
    ...


@overload
def spikesort(recording_path: StrPath, probe: Any = ...,
              params: Mapping[str, Any] | None = ..., output_dir: StrPath | None = ...,
              *, n_channels: int | None = ..., sample_rate: float | None = ...,
              device: str | None = ..., client: Client | None = ..., wait: Literal[False],
              progress: bool = ..., timeout: float | None = ..., priority: int = ...
              ) -> Job:
    ...


@overload
def spikesort(recording_path: StrPath, probe: Any = ...,
              params: Mapping[str, Any] | None = ..., output_dir: StrPath | None = ...,
              *, n_channels: int | None = ..., sample_rate: float | None = ...,
              device: str | None = ..., client: Client | None = ..., wait: bool,
              progress: bool = ..., timeout: float | None = ..., priority: int = ...
              ) -> dict[str, Any] | Job:
    ...


def spikesort(recording_path: StrPath, probe: Any = None,
              params: Mapping[str, Any] | None = None, output_dir: StrPath | None = None,
              *, n_channels: int | None = None, sample_rate: float | None = None,
              device: str | None = "auto", client: Client | None = None, wait: bool = True,
              progress: bool = True, timeout: float | None = None, priority: int = 0
              ) -> dict[str, Any] | Job:
    """Sort a raw int16 recording on neuroqd into a phy folder.

    ``recording_path``: flat int16 file, samples x channels.  ``probe``: a
    path to a Kilosort channel map JSON or a probeinterface JSON, a dict of
    either, or a probeinterface ``Probe``/``ProbeGroup`` (written to
    ``<output_dir>.probe.json``, or to a temporary file without output_dir);
    None means a linear probe (``params["probe_pitch_um"]``, 20 µm).
    ``params``: sorter parameters (``th_detect``, ``th_match``, ``batch``,
    ``seed``, ``car``, ... as the spikesort job type takes them; an unknown
    key raises ``neuroq.errors.BadParam``).  ``output_dir``: the phy folder
    (default: inside the daemon's job directory; the result says where).
    ``n_channels``/``sample_rate``: required unless a SpikeGLX ``.meta`` is
    beside the recording.  ``device``: 'auto', 'cpu', 'cuda' or 'cuda:N'.

    Returns the job's result (``n_units``, ``n_spikes``, ``n_good``,
    ``n_templates``, ``duration_s``, ``output_dir``, ``time_*_s``, and the
    per-template arrays ``unit_spike_counts``, ``unit_good``,
    ``unit_amplitude``; ``warnings``: what looked wrong in the inputs, each
    also issued with ``warnings.warn``, e.g. a probe that reads only some of
    the file's channels or data that look like another channel count), or,
    with ``wait=False``, the :class:`neuroq.Job`
    (a temporary probe file then stays for the daemon to read).  A failed
    job raises the ``neuroq.errors`` class of its code (``BadParam`` for a
    missing file or a size that does not match n_channels, ``BadData`` for a
    recording too short to sort, ...).
    """
    dev = _device(device)
    probe_path, tmp_probe = _probe_path(probe, output_dir)
    own = client is None
    cl = None
    try:
        ps = _job_params(recording_path, probe_path, params, output_dir, n_channels,
                         sample_rate)
        cl = client if client is not None else Client()
        job = cl.submit("spikesort", params=ps, device=dev, priority=priority)
        if not wait:
            tmp_probe = None  # the worker reads it when the job starts
            return job
        try:
            job.wait(progress=progress, timeout=timeout)
        except (errors.TimedOut, errors.Unreachable, KeyboardInterrupt):
            tmp_probe = None  # the job may still run and need the probe
            raise
        res = job.result()
        for w in res.get("warnings") or ():
            warnings.warn(str(w), UserWarning, stacklevel=2)
        return res
    finally:
        if own and cl is not None and wait:
            cl.close()
        if tmp_probe is not None:
            try:
                os.unlink(tmp_probe)
            except OSError:
                pass


# help(spikesort) shows the spikesort job's parameter table (the daemon's own)
spikesort.__doc__ = (spikesort.__doc__ or "") + "\n" + params_doc("spikesort")
