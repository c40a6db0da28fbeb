"""phy's PC feature files (pc_features.npy, pc_feature_ind.npy) from a real
sort: the layout phy and users' scripts read, and features that carry what
the feature view is used for (amplitude along PC 1, units apart)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from gen_gt import generate  # noqa: E402
from test_spikesort import run  # noqa: E402

N_CH = 32


@pytest.fixture(scope="module")
def phy(tmp_path_factory):
    d = tmp_path_factory.mktemp("feat")
    rec = d / "rec.bin"
    generate(str(rec), n_channels=N_CH, n_units=10, duration_s=30.0, seed=3)
    out = d / "phy"
    res, _ = run(rec, out, "--probe", str(rec) + ".probe.json", n_ch=N_CH)
    return out, res


def test_layout(phy):
    out, res = phy
    f = np.load(out / "pc_features.npy")
    ind = np.load(out / "pc_feature_ind.npy")
    st = np.load(out / "spike_templates.npy")
    T = np.load(out / "templates.npy")
    assert f.dtype == np.float32 and f.shape == (res["n_spikes"], 3, N_CH)
    assert np.isfinite(f).all()
    assert ind.dtype == np.int32 and ind.shape == (T.shape[0], N_CH)
    # each template's channels: all distinct, its peak channel first
    assert all(len(set(r)) == N_CH for r in ind.tolist())
    assert np.array_equal(ind[:, 0], np.argmax((T ** 2).sum(axis=1), axis=1))
    assert st.max() < ind.shape[0]
    assert res["time_features_s"] >= 0


def test_features_follow_amplitude_and_separate_units(phy):
    out, _ = phy
    f = np.load(out / "pc_features.npy")
    st = np.load(out / "spike_templates.npy")
    amp = np.load(out / "amplitudes.npy")
    ind = np.load(out / "pc_feature_ind.npy")
    r, units = [], [k for k in np.unique(st) if np.sum(st == k) >= 50]
    assert len(units) >= 8
    for k in units:
        m = st == k
        # PC 1 on the peak channel is the trough's depth: it moves with the
        # fitted amplitude (negative: troughs are negative, PC 1 positive there)
        r.append(np.corrcoef(f[m, 0, 0], amp[m])[0, 1])
    assert np.median(r) < -0.8 and np.mean(np.array(r) < -0.5) >= 0.8, np.round(r, 2)
    # two units on the same peak channel set would be told apart by phy's
    # feature view: the spikes of each unit sit near their own mean, far
    # from any other unit's (features on the 32 channels = all channels here,
    # in each template's channel order: map back to channel order first)
    full = np.zeros((len(st), 3, N_CH), np.float32)
    for k in units:
        m = st == k
        full[np.ix_(m, np.arange(3), ind[k])] = f[m]
    X = full.reshape(len(st), -1)
    means = np.stack([X[st == k].mean(axis=0) for k in units])
    keep = np.isin(st, units)
    d = ((X[keep, None, :] - means[None]) ** 2).sum(axis=2)
    nearest = np.asarray(units)[np.argmin(d, axis=1)]
    print("nearest-mean agreement", np.mean(nearest == st[keep]))
    assert np.mean(nearest == st[keep]) > 0.95
