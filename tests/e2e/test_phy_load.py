"""phylib opens the phy folder the daemon writes without a single warning,
and phy's template-feature view gets its inputs from it.

A small recording goes through the real neuroqd and worker; the folder is
loaded with phylib's load_model (the code phy's template GUI runs first)
with Python warnings turned into errors and a logging handler that fails on
any WARNING from phylib's loggers: "unreferenced clusters" (template or
cluster ids with gaps), "Skipping spike waveforms that do not exist" (no
_phy_spikes_subset files), NaN/Inf replaced, spikes past the end … Skips
when phylib is not installed (deploy/requirements.txt pins it)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import neuroq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spikesort"))
from gen_gt import FS, generate  # noqa: E402

phylib_model = pytest.importorskip("phylib.io.model")
phylib_traces = pytest.importorskip("phylib.io.traces")


class _Fail(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def sorted_folder(shared_daemon, tmp_path_factory):
    """16 channels, 6 units, 10 s (seed 0): a template merged into another
    with a smaller id leaves cluster 6 unused among 0..7 unless the ids are
    renumbered (phylib: "Unreferenced clusters found in spike_clusters")."""
    d = tmp_path_factory.mktemp("phyload")
    rec = d / "rec.bin"
    generate(str(rec), n_channels=16, n_units=6, duration_s=10.0, seed=0)
    out = d / "phy"
    with shared_daemon.client() as c:
        res = neuroq.spikesort(str(rec), probe=str(rec) + ".probe.json",
                               output_dir=out, n_channels=16, sample_rate=FS,
                               client=c, progress=False)
    return rec, out, res


@pytest.fixture(scope="module")
def model(sorted_folder):
    _, out, _ = sorted_folder
    h = _Fail()
    log = logging.getLogger("phylib")
    old = log.level
    log.addHandler(h)
    log.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = phylib_model.load_model(out / "params.py")
    finally:
        log.removeHandler(h)
        log.setLevel(old)
    assert h.records == [], h.records
    yield m
    m.close()


def test_ids_without_gaps(sorted_folder, model):
    _, out, res = sorted_folder
    for ids in (model.spike_templates, model.spike_clusters):
        u = np.unique(ids)
        assert np.array_equal(u, np.arange(u.size)), u
    assert np.unique(model.spike_clusters).size == res["n_units"]
    # the result's per-unit arrays use the same ids as the folder
    counts = np.bincount(model.spike_clusters, minlength=res["n_templates"])
    assert np.array_equal(counts, res["unit_spike_counts"])


def test_template_features(sorted_folder, model):
    _, out, res = sorted_folder
    tf = np.load(out / "template_features.npy")
    ti = np.load(out / "template_feature_ind.npy")
    K = model.n_templates
    nn = min(K, 32)
    assert tf.dtype == np.float32 and tf.shape == (res["n_spikes"], nn)
    assert ti.dtype == np.int32 and ti.shape == (K, nn)
    assert np.isfinite(tf).all()
    # each template's neighbours: itself first, then by similarity
    sim = np.load(out / "similar_templates.npy")
    assert np.array_equal(ti[:, 0], np.arange(K))
    for k in range(K):
        s = sim[k, ti[k, 1:]]
        assert np.all(np.diff(s) <= 0), (k, s)
    st, amp = model.spike_templates, model.amplitudes
    own = tf[:, 0]
    # the own template's feature is the largest for most spikes (others
    # only where spikes overlap) …
    assert np.mean(np.argmax(tf, axis=1) == 0) > 0.95
    # … and is the fitted amplitude times the template's norm: the fit is
    # the least-squares one on the same whitened data, save where matching
    # fitted a spike on the residual of an overlapping one (measured: every
    # one of the 61 of 504 spikes off by more than 0.1 % has another spike
    # within a template's length)
    T = np.load(out / "templates.npy")
    norm = np.sqrt((T.astype(np.float64) ** 2).sum(axis=(1, 2)))
    close = np.isclose(own, amp * norm[st], rtol=1e-3)
    t = model.spike_samples.astype(np.int64)
    gap = np.minimum(np.diff(t, prepend=-10**9), np.diff(t, append=10**12))
    alone = gap >= T.shape[1]
    # (enough spikes stand alone for this to say something: 61 % with
    # th_own, whose lower thresholds for small templates match more spikes)
    assert alone.mean() > 0.5 and close[alone].all(), np.nonzero(~close & alone)


def test_template_feature_view_inputs(model):
    """What phy's TemplateController._get_template_features computes for a
    pair of clusters: each spike's features averaged over each cluster's
    templates; a cluster's own spikes sit higher on its own axis."""
    sc, st = model.spike_clusters, model.spike_templates
    clusters = np.unique(sc)
    assert clusters.size >= 2
    sep = []
    for i, c0 in enumerate(clusters):
        for c1 in clusters[i + 1:]:
            s0, s1 = np.nonzero(sc == c0)[0], np.nonzero(sc == c1)[0]
            n0 = np.bincount(st[s0], minlength=model.n_templates)
            n1 = np.bincount(st[s1], minlength=model.n_templates)
            t0 = model.get_template_features(s0)
            t1 = model.get_template_features(s1)
            assert t0.shape == (s0.size, model.n_templates)
            x0, y0 = (np.average(t0, weights=w, axis=1) for w in (n0, n1))
            x1, y1 = (np.average(t1, weights=w, axis=1) for w in (n0, n1))
            assert np.isfinite([x0, y0]).all() and np.isfinite([x1, y1]).all()
            sep.append(np.mean(x0 > y0) + np.mean(y1 > x1))
    assert np.median(sep) >= 1.9, np.round(sep, 2)


def test_waveform_subset(sorted_folder, model):
    """phy's waveform view reads the subset; it holds the raw samples that
    phylib would cut from the recording, on each template's best channels."""
    rec, _, _ = sorted_folder
    sw = model.spike_waveforms
    assert sw is not None
    ids = sw.spike_ids
    assert np.all(np.diff(ids) > 0)
    counts = np.bincount(model.spike_templates, minlength=model.n_templates)
    got = np.bincount(model.spike_templates[ids], minlength=model.n_templates)
    assert np.array_equal(got, np.minimum(counts, 100))
    raw = np.fromfile(rec, np.int16).reshape(-1, 16)[:, model.channel_mapping]
    for i in range(0, ids.size, 7):
        ch = sw.spike_channels[i]
        w = phylib_traces.extract_waveforms(
            raw, [model.spike_samples[ids[i]]], ch,
            n_samples_waveforms=model.n_samples_waveforms)[0]
        w[:, ch == -1] = 0
        assert np.array_equal(w, sw.waveforms[i])
    # the channels phy asks for (a template's best ones) are stored
    for t in model.template_ids:
        want = model.get_template(t).channel_ids
        first = np.nonzero(model.spike_templates[ids] == t)[0][0]
        assert set(want) <= set(sw.spike_channels[first]), t
        w = model.get_waveforms(ids[[first]], want)
        assert w.shape == (1, model.n_samples_waveforms, len(want))
