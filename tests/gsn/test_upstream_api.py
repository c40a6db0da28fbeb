"""GSN 1.2's public-API expectations, run against ``neuroq.perform_gsn``.

The checks GSN 1.2's own suite (cvnlab/GSN 234c82a, tests/test_performgsn.py,
test_uneven_trials.py, test_bugfixes.py, test_gsn_python_speedups.py,
test_missing_units.py) makes through ``perform_gsn``, written again here for
neuroq's drop-in, plus what a drop-in owes beyond them: None means the
default, the same warnings and AssertionErrors, the default levels bit for
bit, clear errors for input GSN cannot use, one output dtype per input dtype.

Everything runs through a real neuroqd (binaries from $NEUROQ_BUILD, as
tests/e2e). The tests that compare with GSN 1.2 itself need a checkout of
cvnlab/GSN 1.2 ($GSN_REPO, default /tmp/gsn-upstream) and skip without one;
the rest always run.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("pynng", reason="the neuroq client needs pynng")
pytest.importorskip("msgpack", reason="the neuroq client needs msgpack")

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("nq_e2e_fixtures",
                                               HERE.parent / "e2e" / "conftest.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)  # the Daemon helper of tests/e2e (puts neuroq on sys.path)

import neuroq  # noqa: E402
from neuroq import errors  # noqa: E402

ALL_RETURNS = ["cN", "cS", "cNb", "cSb", "eigvecs_signal", "eigvals_signal",
               "eigvecs_difference", "eigvals_difference"]
REQUIRED = ["mnN", "cN", "cNb", "shrinklevelN", "shrinklevelD", "mnS", "cS", "cSb",
            "ncsnr", "numiters"]


# ---- fixtures


@pytest.fixture(scope="module")
def nq():
    """perform_gsn(data, opt) through a neuroqd of this build; .client too."""
    e2e._need_binaries()
    d = e2e.Daemon(e2e._state_dir(), cpu_slots=2)
    d.start()
    c = d.client(timeout=120)

    def run(data, opt=None, **kw):
        kw.setdefault("progress", False)
        return neuroq.perform_gsn(data, opt, client=c, device="cpu", **kw)

    run.client = c
    yield run
    c.close()
    e2e.discard(d)


def _gsn_repo():
    p = os.environ.get("GSN_REPO") or "/tmp/gsn-upstream"
    return p if os.path.isfile(os.path.join(p, "gsn", "perform_gsn.py")) else None


@pytest.fixture(scope="module")
def ref():
    """GSN 1.2's perform_gsn (numpy path), or skip."""
    repo = _gsn_repo()
    if repo is None:
        pytest.skip("no GSN 1.2 checkout: set GSN_REPO (default /tmp/gsn-upstream)")
    pytest.importorskip("scipy", reason="GSN 1.2 needs scipy")
    sys.path.insert(0, repo)
    try:
        from gsn.perform_gsn import perform_gsn
    finally:
        sys.path.remove(repo)

    def run(data, opt=None):
        o = dict(opt or {})
        o.setdefault("wantverbose", 0)
        o["backend"] = "numpy"
        return perform_gsn(np.array(data, copy=True), o)

    return run


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# ---- data (the upstream tests' recipes, written again)


def signal_plus_noise(nvox, ncond, ntrial, seed, sig=2.0, noise=0.5):
    """test_performgsn's basic data: a per-condition signal on every trial."""
    np.random.seed(seed)
    signal = sig * np.random.randn(nvox, ncond)
    return np.repeat(signal[:, :, None], ntrial, axis=2) + noise * np.random.randn(
        nvox, ncond, ntrial)


def fixture_regular():
    """test_performgsn / test_uneven_trials setUp: 50 x 20 x 6."""
    np.random.seed(42)
    d = np.random.randn(50, 20, 6) * 0.5
    d += (np.random.randn(50, 20) * 2.0)[:, :, None]
    return d


def fixture_uneven():
    d = fixture_regular()
    d[:, 0, 3:] = np.nan
    d[:, 1, 4:] = np.nan
    d[:, 2, 2:] = np.nan
    return d


def low_rank(nvox, ncond, ntrial, rank_signal=5, rank_noise=10, noise_scale=0.3, seed=42):
    """test_gsn_python_speedups' low-rank population (the ridge-bug regime)."""
    rng = np.random.RandomState(seed)
    us = np.linalg.qr(rng.standard_normal((nvox, rank_signal)))[0]
    un = np.linalg.qr(rng.standard_normal((nvox, rank_noise)))[0]
    ss = np.diag(np.linspace(1.0, 0.2, rank_signal))
    sn = np.diag(noise_scale * np.linspace(1.0, 0.2, rank_noise))
    signal = us @ ss @ rng.standard_normal((rank_signal, ncond))
    d = np.empty((nvox, ncond, ntrial))
    for t in range(ntrial):
        d[:, :, t] = signal + un @ sn @ rng.standard_normal((rank_noise, ncond))
    return d


def ragged(nvox, ncond, maxtrial, seed, latent=4):
    """test_uneven_trials' ragged data: 2..maxtrial trials per condition."""
    rng = np.random.RandomState(seed)
    sig = rng.randn(nvox, latent) @ rng.randn(latent, ncond)
    d = np.full((nvox, ncond, maxtrial), np.nan)
    for c in range(ncond):
        k = rng.randint(2, maxtrial + 1)
        d[:, c, :k] = sig[:, c:c + 1] + 0.7 * rng.randn(nvox, k)
    return d


def with_holes(nvox, ncond, ntrial, frac, seed):
    """test_missing_units' idea: low-rank data, single values missing."""
    rng = np.random.RandomState(seed)
    d = (rng.randn(nvox, 3) @ rng.randn(3, ncond))[:, :, None] + 0.8 * rng.randn(
        nvox, ncond, ntrial)
    d[rng.rand(nvox, ncond, ntrial) < frac] = np.nan
    return d


def sines(n, c, t):
    """gsn_test.c's mkdata: GSN 1.2 picks shrinklevelN = linspace(0,1,51)[47]."""
    i, k, j = np.meshgrid(np.arange(n), np.arange(c), np.arange(t), indexing="ij")
    return np.sin(1.3 * i + 0.7 * k * k + 2.1 * j + 0.1 * i * k * j) + 0.5 * np.cos(0.9 * k + i)


def lopsided():
    """20 conditions, 18 with one valid trial, one held-out and one training
    condition with two: the split works and ntrialBC = 4/20 < 1."""
    perm = np.argsort(np.random.RandomState(42).random_sample(20), kind="stable")
    d = np.random.RandomState(5).randn(4, 20, 3)
    d[:, :, 1:] = np.nan
    for c in (perm[0], perm[-1]):
        d[:, c, 1] = np.random.RandomState(6 + c).randn(4)
    return d


def assert_sane(r, nvox):
    """test_performgsn's structure and property checks."""
    for k in REQUIRED:
        assert k in r, k
    assert r["mnN"].shape == (1, nvox) and r["mnS"].shape == (1, nvox)
    for k in ("cN", "cS", "cNb", "cSb"):
        assert r[k].shape == (nvox, nvox)
        np.testing.assert_allclose(r[k], r[k].T, rtol=1e-10, atol=1e-14)
    assert r["ncsnr"].shape == (nvox,)
    assert np.min(np.linalg.eigvals(r["cNb"]).real) >= -1e-10
    assert np.min(np.linalg.eigvals(r["cSb"]).real) >= -1e-10
    assert np.all(np.diag(r["cN"]) >= 0) and np.all(np.diag(r["cNb"]) >= 0)
    assert np.all(r["ncsnr"] >= 0) and np.all(np.isfinite(r["ncsnr"]))
    assert np.all(np.isfinite(r["mnN"])) and np.all(np.isfinite(r["mnS"]))
    assert 0 <= r["shrinklevelN"] <= 1 and 0 <= r["shrinklevelD"] <= 1
    assert type(r["numiters"]) is int and r["numiters"] >= 0


# ---- GSN 1.2's expectations through neuroq.perform_gsn (always run)


def test_basic_functionality(nq):
    assert_sane(nq(signal_plus_noise(20, 10, 4, 42)), 20)


def test_single_unit(nq):
    r = nq(signal_plus_noise(1, 10, 4, 42))
    assert_sane(r, 1)
    # N = 1 (deliberate: the MATLAB/torch behaviour): the curve is flat,
    # the first level wins, cN is the raw pooled variance
    assert r["shrinklevelN"] == 0.0 and r["shrinklevelD"] == 0.0
    r = nq(np.random.RandomState(0).randn(1, 6, 3))  # test_bugfixes
    assert np.isfinite(r["ncsnr"]).all()


def test_uneven_basic_and_properties(nq):
    r = nq(fixture_uneven())
    assert_sane(r, 50)
    even = nq(fixture_regular())
    assert_sane(even, 50)
    for k in ("mnN", "cN", "mnS", "cS"):
        assert r[k].shape == even[k].shape


@pytest.mark.parametrize("opt", [{"wantverbose": 0}, {"wantshrinkage": 0},
                                 {"wantverbose": 0, "wantshrinkage": 0},
                                 {"wantverbose": 1, "wantshrinkage": 1}, {}, None])
def test_option_combinations(nq, opt):
    np.random.seed(123)
    x = 2 * np.random.randn(15, 8, 3) + 0.5 * np.random.randn(15, 8, 3)
    y = x[:12, :6, :].copy()
    y[:, 0, -1] = np.nan
    y[:, 1, -2:] = np.nan
    for d in (x, y):
        r = nq(d, opt)
        assert isinstance(r, dict) and "mnN" in r and "cN" in r
        if opt and opt.get("wantshrinkage") == 0:
            assert r["shrinklevelN"] == 1.0 and r["shrinklevelD"] == 1.0


def test_minimal_trials_and_small_inputs(nq):
    np.random.seed(456)
    assert_sane(nq(np.random.randn(10, 5, 2)), 10)
    np.random.seed(131415)
    assert isinstance(nq(np.random.randn(8, 4, 3), {}), dict)


def test_error_conditions(nq):
    with pytest.raises(ValueError):
        nq(np.random.randn(5, 3, 1))
    with pytest.raises(ValueError):  # test_bugfixes: 2-D input
        nq(np.random.RandomState(0).randn(3, 6))
    bad = np.random.randn(5, 3, 3)
    bad[:, 0, :] = np.nan
    with pytest.raises(AssertionError):
        nq(bad)


def test_uneven_error_conditions(nq):
    np.random.seed(800801)
    d = np.full((6, 3, 3), np.nan)
    d[:, 0, :2] = np.random.randn(6, 2)
    d[:, 1, :1] = np.random.randn(6, 1)
    d[:, 2, :3] = np.random.randn(6, 3)
    assert "mnN" in nq(d)
    d[:, 1, :] = np.nan
    with pytest.raises(AssertionError):
        nq(d)


def test_degenerate_validation_split_asserts(nq):
    d = np.random.default_rng(0).normal(size=(3, 6, 3))
    d[:, 5, 1:] = np.nan  # the held-out condition keeps 1 valid trial
    with pytest.raises(AssertionError) as ei:
        nq(d, {"wantshrinkage": 1, "returns": ["cN", "cS"]})
    e = ei.value
    assert isinstance(e, errors.BadData) and isinstance(e, ValueError)
    assert isinstance(e, errors.UpstreamAssertion) and e.code == 8
    assert str(e).startswith("EBADDATA: validation data did not have any conditions")


@pytest.mark.parametrize("level", [0.0, 0.3, 1.0])
def test_honors_user_shrinklevels(nq, level):
    d = np.random.default_rng(3).normal(size=(3, 8, 4))
    r = nq(d, {"wantshrinkage": 1, "shrinklevels": np.array([level]),
               "returns": ["cN", "cS"]})
    assert r["shrinklevelN"] == level and r["shrinklevelD"] == level
    assert "cN" in r and "cS" in r and "cSb" not in r


def test_uneven_scenarios(nq):
    np.random.seed(42)
    patterns = [[6, 5, 4, 3, 2, 2, 2, 2, 2, 2], [3, 6, 4, 2, 5, 3, 6, 2, 4, 3],
                [2, 2, 2, 2, 2, 2, 6, 6, 5, 4]]
    for keep in patterns:
        d = np.random.randn(30, 10, 6) + (np.random.randn(30, 10) * 1.5)[:, :, None]
        for c, k in enumerate(keep):
            d[:, c, k:] = np.nan
        r = nq(d)
        assert np.all(np.isfinite(r["mnN"]))
    np.random.seed(42)
    d = np.random.randn(25, 12, 5)  # mixed NaN patterns
    d[:, 0, -1] = np.nan
    d[:, 1, -2:] = np.nan
    d[:, 2, 0] = np.nan
    d[:, 3, [0, 2, 4]] = np.nan
    r = nq(d)
    assert np.all(np.isfinite(r["mnN"])) and np.all(np.isfinite(r["mnS"]))
    d = np.random.randn(15, 4, 3)  # minimal: 2 conditions with 2 trials
    d[:, 0, -1] = np.nan
    d[:, 1, -1] = np.nan
    assert "mnN" in nq(d)
    d = np.random.randn(10, 8, 6)  # maximal unevenness
    for c, k in enumerate([2, 2, 3, 3, 4, 4, 5, 6]):
        d[:, c, k:] = np.nan
    assert np.all(np.isfinite(nq(d)["ncsnr"]))


def test_edge_cases_with_one_trial_conditions(nq):
    d = np.random.RandomState(7).randn(10, 5, 4)
    d[:, 0, 1:] = np.nan
    d[:, 1, 3:] = np.nan
    d[:, 2, 2:] = np.nan
    assert "mnN" in nq(d)


def test_numerical_stability(nq):
    np.random.seed(192021)
    assert np.all(np.isfinite(nq(1e-6 * np.random.randn(8, 5, 3))["ncsnr"]))
    assert np.all(np.isfinite(nq(1e3 * np.random.randn(8, 5, 3))["ncsnr"]))


def test_dimensions_preserved(nq):
    for nvox in (10, 30):
        for ncond in (6, 12):
            for ntrial in (3, 5):
                d = np.random.randn(nvox, ncond, ntrial)
                d[:, :2, -1] = np.nan
                r = nq(d)
                assert r["mnN"].shape == (1, nvox) and r["mnS"].shape == (1, nvox)
                assert r["cN"].shape == (nvox, nvox) and r["cS"].shape == (nvox, nvox)


def test_determinism(nq):
    d = np.random.RandomState(0).standard_normal((15, 40, 3))
    a, b = nq(d), nq(d)
    for k in ("cSb", "cNb", "cS", "cN", "ncsnr", "mnN", "mnS"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["numiters"] == b["numiters"]
    u = fixture_uneven()
    a, b = nq(u), nq(u)
    np.testing.assert_array_equal(a["mnS"], b["mnS"])


def test_large_uneven(nq):
    np.random.seed(789)
    d = (3 * np.random.randn(100, 40))[:, :, None] + np.random.randn(100, 40, 8)
    for c in range(0, 40, 3):
        d[:, c, -np.random.randint(1, 3):] = np.nan
    r = nq(d)
    assert np.all(r["ncsnr"] >= 0) and np.any(r["ncsnr"] > 0)


def test_balanced_and_low_rank(nq):
    r = nq(np.random.RandomState(0).standard_normal((30, 60, 4)))
    np.linalg.cholesky(r["cSb"])
    np.linalg.cholesky(r["cNb"])
    assert np.all(r["ncsnr"] >= 0)
    r = nq(low_rank(50, 40, 3))
    assert r["shrinklevelD"] < 1.0  # alpha = 1 is singular: not picked
    np.linalg.cholesky(r["cSb"])


def test_device_option_passes_through(nq):
    d = np.random.RandomState(0).standard_normal((20, 50, 3))
    a, b = nq(d, {"wantverbose": 0}), nq(d, {"wantverbose": 0, "device": "cpu"})
    for k in ("cSb", "cNb", "shrinklevelN", "shrinklevelD", "ncsnr"):
        np.testing.assert_array_equal(a[k], b[k])


def test_uneven_still_psd(nq):
    d = np.random.RandomState(0).standard_normal((20, 40, 5))
    d[:, ::3, 0] = np.nan
    r = nq(d)
    np.linalg.cholesky(r["cSb"])
    np.linalg.cholesky(r["cNb"])


def test_missing_units(nq):
    r = nq(with_holes(6, 30, 6, 0.2, 11), {"uneven": "missing"})
    for k in ("cN", "cS", "cNb", "cSb", "ncsnr", "mnN", "mnS"):
        assert np.isfinite(r[k]).all(), k
    r = nq(with_holes(8, 40, 6, 0.2, 7), {"uneven": "missing"})
    for k in ("cN", "cSb", "cNb"):
        assert np.allclose(r[k], r[k].T, atol=1e-9)
        assert np.linalg.eigvalsh((r[k] + r[k].T) / 2).min() > -1e-8


# ---- what a drop-in owes beyond GSN's suite (always run)


def test_default_levels_are_numpys_linspace(nq):
    job = nq.client.submit("gsn", inputs={"data": sines(4, 10, 3)}, device="cpu")
    job.wait(progress=False, timeout=120)
    lv = job.result()["shrinklevels"]
    ref = np.linspace(0, 1, 51)
    assert lv.dtype == np.float64 and lv.shape == (51,)
    np.testing.assert_array_equal(lv.view(np.uint64), ref.view(np.uint64))
    # GSN 1.2 picks linspace(0,1,51)[47] (0.9400000000000001, not 0.94) here
    r = nq(sines(4, 10, 3))
    assert r["shrinklevelN"] == ref[47] and r["shrinklevelN"] != 0.94


@pytest.mark.parametrize("nll", ["spectral", "eigh", "cholesky"])
def test_n1_levels_exact_on_every_path(nq, nll):
    for seed in range(8):
        d = np.random.RandomState(seed).randn(1, 10 + 3 * seed, 2 + seed % 3) * (1 + seed)
        r = nq(d, {"nll": nll})
        assert r["shrinklevelN"] == 0.0 and r["shrinklevelD"] == 0.0, (nll, seed)


def test_none_means_default(nq):
    d = signal_plus_noise(6, 20, 3, 1)
    base = nq(d)
    for key in ("wantshrinkage", "returns", "shrinklevels", "uneven", "backend",
                "device", "wantverbose", "eigh_device"):
        r = nq(d, {key: None})
        assert set(r) == set(base), key
        assert r["shrinklevelN"] == base["shrinklevelN"], key
        assert r["shrinklevelD"] == base["shrinklevelD"], key
        np.testing.assert_array_equal(r["cSb"], base["cSb"])


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (4, 5, 0)])
def test_empty_data_is_refused(nq, shape):
    with pytest.raises(errors.BadData, match="data is empty") as ei:
        nq(np.zeros(shape))
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("make,what", [
    (lambda x: x + 1j, "complex"),
    (lambda x: x.astype(str), "string"),
    (lambda x: x.astype(object), "object"),
])
def test_non_real_data_is_refused(nq, make, what):
    with pytest.raises(errors.BadArray, match=what) as ei:
        nq(make(np.random.RandomState(0).randn(4, 10, 3)))
    assert isinstance(ei.value, ValueError)


def test_bad_shrinklevels_are_refused(nq):
    d = np.random.RandomState(0).randn(4, 10, 3)
    with pytest.raises(errors.BadParam, match="1-D"):
        nq(d, {"shrinklevels": np.array([[0.1, 0.5], [0.2, 0.9]])})
    with pytest.raises(errors.BadParam, match="numbers"):
        nq(d, {"shrinklevels": ["0.1", "0.5"]})
    assert nq(d, {"shrinklevels": 0.5})["shrinklevelN"] == 0.5  # one level


def test_float32_in_float32_out(nq):
    cases = [np.random.RandomState(s).randn(6, 20, 3) for s in (0, 3)]
    cases.append(fixture_uneven()[:10])
    for d in cases:
        for opt in ({}, {"uneven": "missing"}):
            r = nq(d.astype(np.float32), dict(opt, returns=ALL_RETURNS))
            for k, v in r.items():
                if isinstance(v, np.ndarray):
                    assert v.dtype == np.float32, k
    r = nq(np.random.RandomState(0).randint(0, 5, (4, 10, 3)))  # ints: float64
    assert r["cSb"].dtype == np.float64


def _warned(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = fn()
    return r, [(x.category, str(x.message)) for x in w]


def test_warnings(nq):
    _, w = _warned(lambda: nq(np.random.RandomState(0).randn(4, 2, 3)))
    msgs = [m for c, m in w if c is UserWarning]
    assert len(msgs) == 2 and all(m.startswith("All covariance matrices were singular.")
                                   for m in msgs)
    _, w = _warned(lambda: nq(lopsided()))
    assert any(c is UserWarning and m.startswith("ntrialBC is lopsided! setting to 1")
               for c, m in w)
    d = np.random.RandomState(1).randn(5, 3, 3)
    d[:, 0, :] = np.nan
    r, w = _warned(lambda: nq(d, {"uneven": "missing"}))
    msgs = sorted(m for c, m in w if c is UserWarning)
    assert msgs[0].startswith("missing-units: cD shrink level fell back to 1.0")
    assert msgs[1].startswith("missing-units: cN shrink level fell back to 1.0")
    assert r["shrinklevelN"] == 1.0 and r["shrinklevelD"] == 1.0
    _, w = _warned(lambda: nq(fixture_regular()))
    assert w == []


# ---- against GSN 1.2 itself (skip without a checkout)


def _datasets():
    return {
        "basic": (signal_plus_noise(20, 10, 4, 42), {}),
        "regular": (fixture_regular(), {}),
        "uneven": (fixture_uneven(), {}),
        "options": (2 * np.random.RandomState(123).randn(15, 8, 3), {"wantshrinkage": 0}),
        "balanced": (np.random.RandomState(0).standard_normal((30, 60, 4)), {}),
        "low_rank": (low_rank(50, 40, 3), {}),
        "sines": (sines(4, 10, 3), {}),
        "levels": (np.random.default_rng(3).normal(size=(3, 8, 4)),
                   {"shrinklevels": [0.0, 0.3, 1.0]}),
        **{f"ragged{s}": (ragged(12, 60, 6, s), {}) for s in range(4)},
        "missing": (with_holes(7, 30, 6, 0.1, 3), {"uneven": "missing"}),
    }


@pytest.mark.parametrize("name", sorted(_datasets()))
def test_same_result_as_gsn(nq, ref, name):
    d, opt = _datasets()[name]
    opt = dict(opt, returns=ALL_RETURNS)
    u = quiet(ref, d, opt)
    r = quiet(nq, d, opt)
    assert r["shrinklevelN"] == u["shrinklevelN"] and r["shrinklevelD"] == u["shrinklevelD"]
    assert r["numiters"] == u["numiters"]
    assert set(r) == set(u)
    for k in ("mnN", "mnS", "ncsnr", "cN", "cS", "cNb", "cSb", "eigvals_signal",
              "eigvals_difference"):
        a, b = np.asarray(u[k], float), r[k]
        assert b.shape == a.shape, k
        tol = 1e-9 * max(np.abs(a).max(), 1e-300) + (2e-10 if k in (
            "cNb", "cSb", "eigvals_signal", "eigvals_difference") else 0)
        assert np.abs(a - b).max() <= tol, (k, np.abs(a - b).max())


def test_same_assertions_as_gsn(nq, ref):
    d1 = np.random.default_rng(0).normal(size=(3, 6, 3))
    d1[:, 5, 1:] = np.nan
    d2 = np.random.randn(5, 3, 3)
    d2[:, 0, :] = np.nan
    d3 = np.random.RandomState(2).randn(4, 2, 3)
    d3[:, 0, 2] = np.nan
    for d in (d1, d2, d3):
        with pytest.raises(AssertionError) as up:
            quiet(ref, d)
        with pytest.raises(AssertionError) as ours:
            nq(d)
        assert str(ours.value).split(": ", 1)[1].startswith(str(up.value))


def test_same_warnings_as_gsn(nq, ref):
    d = np.random.RandomState(1).randn(5, 3, 3)
    d[:, 0, :] = np.nan
    for data, opt in ((np.random.RandomState(0).randn(4, 2, 3), {}),
                      (lopsided(), {}), (d, {"uneven": "missing"}),
                      (fixture_uneven(), {})):
        _, wu = _warned(lambda: ref(data, opt))
        _, wn = _warned(lambda: nq(data, opt))
        up = sorted(m for c, m in wu if c is UserWarning)
        ours = sorted(m for c, m in wn if c is UserWarning)
        assert len(up) == len(ours)
        for a, b in zip(up, ours):
            assert b.startswith(a.split(" (")[0]), (a, b)


def test_gsn_float32_dtypes_depend_on_the_data(ref, nq):
    """Why neuroq returns float32 for float32 input whatever the data: GSN
    1.2's cSb/cNb (and eigen outputs) become float64 exactly when its PSD
    projection added the 1e-10 ridge, a rounding coin flip (spec 3.5)."""
    seen = set()
    for s in (0, 3):
        x = np.random.RandomState(s).randn(6, 20, 3).astype(np.float32)
        u = quiet(ref, x)
        seen.add(u["cSb"].dtype)
        assert nq(x)["cSb"].dtype == np.float32
    assert seen == {np.dtype(np.float32), np.dtype(np.float64)}
