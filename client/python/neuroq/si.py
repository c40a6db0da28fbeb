"""SpikeInterface bridge: sort a SpikeInterface recording on neuroqd.

    import spikeinterface.core as si
    import neuroq.si
    rec, gt = si.generate_ground_truth_recording(durations=[20.0], seed=0)
    phy, sorting = neuroq.si.run_sorter(rec, "/data/rec_phy")
    # sorting: spikeinterface.extractors.read_kilosort(phy), ready for
    # spikeinterface.comparison.compare_sorter_to_ground_truth(gt, sorting)

spikeinterface is imported only when these functions are called, so
``import neuroq`` never needs it (``pip install 'neuroq[spikeinterface]'``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .client import Client
from .spikesort import StrPath, write_probe
from .spikesort import spikesort as _spikesort

#: the raw copy inside the phy folder (phy's dat_path points at it)
DAT_NAME = "recording.dat"
PROBE_NAME = "chanMap.json"
INFO_NAME = "neuroq_si.json"
_I16 = np.dtype("<i2")


def _need_si() -> None:
    try:
        import spikeinterface  # noqa: F401
    except ImportError:
        raise ImportError("neuroq.si needs spikeinterface: pip install "
                          "'neuroq[spikeinterface]' (or spikeinterface pandas)") from None


def binary_source(recording: Any) -> tuple[str, int] | None:
    """(path, n_channels) when the daemon can read the recording's own file
    as it is (one int16 segment, samples x channels, no header), else None."""
    from spikeinterface.core import BinaryRecordingExtractor

    if not isinstance(recording, BinaryRecordingExtractor):
        return None
    if recording.get_num_segments() != 1:
        return None
    seg = recording._recording_segments[0]
    if (np.dtype(seg.dtype) != _I16 or seg.time_axis != 0 or seg.file_offset != 0
            or seg.num_channels != recording.get_num_channels()):
        return None
    path = os.path.abspath(seg.file_path)
    # a trailing partial sample would make the daemon refuse the file
    if os.path.getsize(path) != seg.get_num_samples() * seg.num_channels * 2:
        return None
    return path, int(seg.num_channels)


def _channel_map(recording: Any) -> dict[str, Any] | None:
    """Kilosort channel map of the recording's channels in their order (row i
    = channel i), or None when the recording has no channel locations."""
    try:
        loc = np.asarray(recording.get_channel_locations(), dtype=np.float64)
    except Exception:  # noqa: BLE001 -- no probe attached: a linear probe
        return None
    n = recording.get_num_channels()
    if loc.ndim != 2 or loc.shape[0] != n or loc.shape[1] < 2:
        return None
    try:
        groups = np.asarray(recording.get_channel_groups())
        _, kc = np.unique(groups, return_inverse=True)
    except Exception:  # noqa: BLE001 -- no groups: one shank
        kc = np.zeros(n, dtype=np.int64)
    return {"chanMap0ind": list(range(n)), "chanMap": list(range(1, n + 1)),
            "xc": loc[:, 0].tolist(), "yc": loc[:, 1].tolist(),
            "kcoords": (np.asarray(kc).ravel() + 1).tolist(), "connected": [True] * n,
            "fs": float(recording.get_sampling_frequency())}


def _int16_scale(recording: Any, scale: float | None) -> float:
    """Factor raw traces are multiplied by to fit int16 (1 for int16)."""
    if scale is not None:
        return float(scale)
    dt = np.dtype(recording.get_dtype())
    if dt.kind in "iu":
        return 1.0
    from spikeinterface.core import get_random_data_chunks

    n = recording.get_num_samples(0)
    try:
        chunks = get_random_data_chunks(recording, num_chunks_per_segment=20,
                                        chunk_size=10000, seed=0)
    except Exception:  # noqa: BLE001 -- too short for 20 chunks: read the start
        chunks = recording.get_traces(segment_index=0, start_frame=0,
                                      end_frame=min(n, 200000))
    peak = float(np.max(np.abs(chunks))) if chunks.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        return 1.0
    # the largest sampled value at a quarter of the range: spikes bigger
    # than any sampled still fit, and noise keeps plenty of levels
    return 8192.0 / peak


def write_int16(recording: Any, path: str, scale: float = 1.0,
                chunk_frames: int | None = None, progress: bool = True) -> int:
    """Write segment 0 as flat int16 (samples x channels) at path; returns the
    number of samples clipped to the int16 range."""
    n = recording.get_num_samples(0)
    c = recording.get_num_channels()
    dt = np.dtype(recording.get_dtype())
    if chunk_frames is None:
        chunk_frames = max(1000, min(n, (32 << 20) // max(1, 4 * c)))  # ~32 MB of float
    shift = 2 ** (8 * dt.itemsize - 1) if dt.kind == "u" else 0
    clipped = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, desc="writing int16", unit="sample", unit_scale=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            for s in range(0, n, chunk_frames):
                e = min(n, s + chunk_frames)
                tr = recording.get_traces(segment_index=0, start_frame=s, end_frame=e)
                if dt == _I16 and scale == 1.0:
                    out = np.ascontiguousarray(tr, dtype=_I16)
                else:
                    x = tr.astype(np.float64)
                    if shift:
                        x -= shift
                    if scale != 1.0:
                        x *= scale
                    x = np.rint(x)
                    big = (x > 32767) | (x < -32768)
                    clipped += int(np.count_nonzero(big))
                    out = np.clip(x, -32768, 32767).astype(_I16)
                f.write(out.tobytes())
                if bar is not None:
                    bar.update(e - s)
        os.chmod(tmp, 0o644)  # the daemon's user reads it
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        if bar is not None:
            bar.close()
    return clipped


def _prepare_folder(folder: Path, remove_existing_folder: bool, keep: str | None) -> None:
    if folder.exists() and any(folder.iterdir()):
        if not remove_existing_folder:
            raise FileExistsError(f"{folder} exists and is not empty (pass "
                                  "remove_existing_folder=True to replace it)")
        if keep is not None and Path(keep).resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"will not remove {folder}: the recording {keep} is inside it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def run_sorter(recording: Any, output_dir: StrPath,
               params: Mapping[str, Any] | None = None, client: Client | None = None, *,
               device: str | None = "auto", progress: bool = True, timeout: float | None = None,
               remove_existing_folder: bool = False, keep_good_only: bool = False,
               int16_scale: float | None = None, copy: bool | None = None
               ) -> tuple[Path, Any]:
    """Sort a SpikeInterface recording with neuroqd; returns (phy_folder, sorting).

    ``recording``: a one-segment SpikeInterface recording (several segments:
    ``spikeinterface.concatenate_recordings`` first).  Its traces go to
    ``output_dir/recording.dat`` as int16, samples x channels, in the
    recording's channel order; float traces are scaled to fit int16
    (``int16_scale``, default: chosen from random chunks; the factor is kept
    in ``output_dir/neuroq_si.json`` and the sorting's annotation
    ``neuroq_int16_scale``).  An int16 ``BinaryRecordingExtractor`` (also a
    saved binary folder) is sorted in place, without a copy, unless
    ``copy=True``.  The channel locations go to ``output_dir/chanMap.json``
    (Kilosort format; none: a linear probe).

    ``params``: sorter parameters of the spikesort job (th_detect, seed, ...).
    ``output_dir`` must be empty or absent unless ``remove_existing_folder``.
    Paths must be readable and writable by the daemon's user.

    ``sorting`` is ``spikeinterface.extractors.read_kilosort(phy_folder,
    keep_good_only=keep_good_only)``: spike frames are samples of the
    recording's segment 0, so it compares directly with a ground truth
    sorting of that recording.
    """
    _need_si()
    from spikeinterface.extractors import read_kilosort

    if recording.get_num_segments() != 1:
        raise ValueError(f"the recording has {recording.get_num_segments()} segments: "
                         "sort one, or spikeinterface.concatenate_recordings() first")
    folder = Path(os.path.abspath(os.fspath(output_dir)))
    src = None if copy else binary_source(recording)
    if copy is False and src is None:
        raise ValueError("copy=False but the recording is not a flat int16 binary "
                         "file the daemon can read as it is")
    _prepare_folder(folder, remove_existing_folder, src[0] if src else None)
    scale = 1.0
    if src is not None:
        dat, n_rows = src
    else:
        scale = _int16_scale(recording, int16_scale)
        dat = str(folder / DAT_NAME)
        clipped = write_int16(recording, dat, scale=scale, progress=progress)
        if clipped:
            import warnings
            warnings.warn(f"{clipped} samples were clipped to the int16 range "
                          f"(scale {scale:g}); pass a smaller int16_scale", stacklevel=2)
        n_rows = recording.get_num_channels()
    cmap = _channel_map(recording)
    probe = write_probe(cmap, str(folder / PROBE_NAME)) if cmap is not None else None
    info = {"dat_path": dat, "copied": src is None, "int16_scale": scale,
            "channel_ids": [str(c) for c in recording.get_channel_ids()],
            "sampling_frequency": float(recording.get_sampling_frequency())}
    (folder / INFO_NAME).write_text(json.dumps(info, indent=1))
    _spikesort(dat, probe=probe, params=params, output_dir=str(folder), n_channels=n_rows,
               sample_rate=float(recording.get_sampling_frequency()), device=device,
               client=client, wait=True, progress=progress, timeout=timeout)
    sorting = read_kilosort(folder, keep_good_only=keep_good_only)
    sorting.annotate(neuroq_int16_scale=scale)
    return folder, sorting
