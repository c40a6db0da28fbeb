"""Synthetic ground truth for the spikesort tests (numpy only).

A linear probe (20 µm pitch), units with distinct biphasic waveforms and
Gaussian spatial footprints, Poisson firing with a 2 ms refractory period,
±10 % amplitude jitter, white noise plus a common-mode hum and per-channel
offsets (which mean removal, the median reference and the high-pass must
take out).  Written as int16 samples × channels, like SpikeGLX.
"""
import json
import sys

import numpy as np

FS = 30000


def taper():
    """Cosine ramps so a waveform starts and ends at 0: a cut-off tail would
    leave a step that the high-pass turns into a spike-like artefact."""
    w = np.ones(61)
    w[:10] = 0.5 - 0.5 * np.cos(np.pi * np.arange(10) / 10)
    w[-16:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, 17) / 16)
    return w


def waveform(rng, width_ms, repol, tshift):
    t = (np.arange(61) - 20) / FS * 1000.0  # ms, trough at sample 20
    t = t - tshift
    trough = -np.exp(-0.5 * (t / width_ms) ** 2)
    peak = repol * np.exp(-0.5 * ((t - 3 * width_ms) / (1.8 * width_ms)) ** 2)
    return (trough + peak) * taper()


def similarity(a, b, maxlag=10):
    """Max normalised cross-correlation over small lags (as the sorter's)."""
    best = -1.0
    for d in range(-maxlag, maxlag + 1):
        x = (a[d:] * b[:61 - d]).sum() if d >= 0 else \
            (a[:61 + d] * b[-d:]).sum()
        best = max(best, x / np.linalg.norm(a) / np.linalg.norm(b))
    return best


def generate(path, n_channels=32, n_units=10, duration_s=30.0, seed=0,
             noise=10.0, drift_um=0.0):
    """drift_um: the probe drifts linearly by this much over the recording
    (every unit's depth moves from d to d + drift_um), Kilosort's rigid
    drift model; the ground truth then has "drift_um_at" (µm at each second)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * FS)
    ypos = np.arange(n_channels) * 20.0
    span = ypos[-1]
    # unit depths: spread out, two pairs share a location
    depths = np.linspace(0.1 * span, 0.9 * span, n_units)
    if n_units >= 6:
        depths[3] = depths[2] + 5
        depths[5] = depths[4] - 5
    data = rng.normal(0, noise, size=(n, n_channels)).astype(np.float32)
    # common-mode 50 Hz hum and slow offsets
    tt = np.arange(n) / FS
    data += (15 * np.sin(2 * np.pi * 50 * tt))[:, None].astype(np.float32)
    data += rng.uniform(-200, 200, size=n_channels).astype(np.float32)
    times, labels, templates = [], [], []
    for u in range(n_units):
        # distinct units: redraw until no earlier unit looks the same
        # (similarity < 0.85, below Kilosort's 0.9 merge threshold)
        for _ in range(200):
            width = rng.uniform(0.12, 0.3)
            repol = rng.uniform(0.15, 0.6)
            amp = rng.uniform(100, 180)
            sig = rng.uniform(25, 45)
            dist = np.abs(ypos - depths[u])
            foot = np.exp(-0.5 * (dist / sig) ** 2)
            wf = np.stack([waveform(rng, width, repol, 0.002 * d)
                           for d in dist], axis=1)  # 61 × C
            tmpl = amp * wf * foot[None, :]
            shape = (width, repol, amp, sig)
            if all(similarity(tmpl, o) < 0.85
                   for o, od in zip(templates, depths[:u])
                   if abs(od - depths[u]) < 150):
                break
        templates.append(tmpl)
        params = shape
        rate = rng.uniform(4, 12)
        isi = rng.exponential(1.0 / rate, size=int(rate * duration_s * 2) + 50)
        st = np.cumsum(isi + 0.002)  # 2 ms refractory
        st = (st[st < duration_s - 0.01] * FS).astype(np.int64)
        st = st[st > 30]
        for t0 in st:
            a = rng.normal(1.0, 0.1)
            if drift_um:
                w_, r_, a_, s_ = params
                dist = np.abs(ypos - depths[u] - drift_um * t0 / n)
                foot = np.exp(-0.5 * (dist / s_) ** 2)
                wf = np.stack([waveform(None, w_, r_, 0.002 * d)
                               for d in dist], axis=1)
                data[t0 - 20:t0 + 41] += a * a_ * wf * foot[None, :]
            else:
                data[t0 - 20:t0 + 41] += a * tmpl
        times.append(st)
        labels.append(np.full(st.size, u))
    times = np.concatenate(times)
    labels = np.concatenate(labels)
    o = np.argsort(times, kind="stable")
    np.clip(data, -32768, 32767, out=data)
    data.astype(np.int16).tofile(path)
    np.savez(path + ".gt.npz", times=times[o], labels=labels[o],
             templates=np.array(templates), fs=FS, n_channels=n_channels,
             drift_um_at=drift_um * np.arange(int(duration_s) + 1) / duration_s)
    probe = {"chanMap": list(range(n_channels)), "xc": [0.0] * n_channels,
             "yc": ypos.tolist(), "kcoords": [1] * n_channels,
             "connected": [True] * n_channels}
    with open(path + ".probe.json", "w") as f:
        json.dump(probe, f)
    return times[o], labels[o]


def compare(gt_times, gt_labels, times, clusters, delta):
    """SpikeInterface-style comparison: agreement, greedy pairing ≥ 0.5."""
    gt_units = np.unique(gt_labels)
    so_units = np.unique(clusters)
    agree = np.zeros((gt_units.size, so_units.size))
    matches = np.zeros_like(agree)
    for i, g in enumerate(gt_units):
        gt = gt_times[gt_labels == g]
        for j, s in enumerate(so_units):
            so = np.sort(times[clusters == s])
            if so.size == 0:
                continue
            k = np.searchsorted(so, gt)
            lo = np.abs(gt - so[np.clip(k - 1, 0, so.size - 1)]) <= delta
            hi = np.abs(gt - so[np.clip(k, 0, so.size - 1)]) <= delta
            m = min(int(np.sum(lo | hi)), so.size)
            matches[i, j] = m
            agree[i, j] = m / (gt.size + so.size - m)
    acc = np.zeros(gt_units.size)
    used_g, used_s = set(), set()
    for flat in np.argsort(-agree, axis=None):
        i, j = np.unravel_index(flat, agree.shape)
        if agree[i, j] < 0.5:
            break
        if i in used_g or j in used_s:
            continue
        used_g.add(i)
        used_s.add(j)
        acc[i] = agree[i, j]
    return acc


if __name__ == "__main__":
    generate(sys.argv[1], duration_s=float(sys.argv[2]) if len(sys.argv) > 2
             else 30.0)
