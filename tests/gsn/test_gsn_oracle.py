"""Self-tests of the numpy GSN oracle (fast; no neuroq binary needed)."""

import ast
import math
import warnings

import numpy as np
import pytest

import datasets
import gsn_oracle as O


def quiet(data, opt=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return O.perform_gsn(data, opt)


def test_permutation_matches_matlab_randperm():
    # RandomState(42).random_sample(5) = .375 .951 .732 .599 .156
    assert O.perm(5).tolist() == [4, 0, 3, 2, 1]
    ho, tr = O.split(5)
    assert ho.tolist() == [4] and tr.tolist() == [0, 3, 2, 1]
    assert len(O.split(40)[0]) == 8 and len(O.split(2)[0]) == 0


def test_levels():
    assert len(O.levels_of({})) == 51 and O.levels_of({})[1] == 0.02
    assert O.levels_of({"wantshrinkage": 0}).tolist() == [1.0]
    assert O.levels_of({"wantshrinkage": 0, "shrinklevels": [0.5]}).tolist() == [0.5]


@pytest.mark.parametrize("name", ["even_30x40x4", "lowrank_50x40x3", "rankdef_60x20x3",
                                  "uneven_40x60x4_30pct", "missing_8x40x6_25pct"])
def test_outputs_psd_and_symmetric(name):
    data, opt = datasets.catalog()[name]
    r = quiet(data, opt)
    for k in ("cSb", "cNb"):
        m = r[k]
        assert np.allclose(m, m.T, rtol=1e-10, atol=0)
        assert np.linalg.eigvalsh(m).min() >= -1e-10 * max(1.0, np.abs(m).max())
        np.linalg.cholesky(m)  # strictly PD after the ridge
    assert np.all(r["mnN"] == 0) and r["ncsnr"].min() >= 0
    assert isinstance(r["numiters"], int) and 0 <= r["numiters"] <= O.BICONVEX_CAP


def _direct_nll(c, rows):
    """Mean Gaussian negative log density, written without Cholesky."""
    n = c.shape[0]
    sign, logdet = np.linalg.slogdet(c)
    assert sign > 0
    q = np.einsum("mi,ij,mj->m", rows, np.linalg.inv(c), rows)
    return 0.5 * q.mean() + 0.5 * logdet + 0.5 * n * math.log(2 * math.pi)


def test_nll_curve_matches_density_formula():
    rs = np.random.RandomState(3)
    a = rs.randn(12, 40)
    c = a @ a.T / 40
    rows = rs.randn(9, 12)
    levels = np.linspace(0, 1, 11)
    nll, rule = O.nll_curve(c, rows, levels, False)
    want = [_direct_nll(O.shrink(c, x), rows) for x in levels]
    assert rule == "none"
    np.testing.assert_allclose(nll, want, rtol=1e-11)


def test_nll_spectral_form_agrees():
    """Spec 4.5: one eigh of the correlation matrix gives every level."""
    rs = np.random.RandomState(4)
    a = rs.randn(15, 30) * rs.uniform(0.5, 2, size=(15, 1))
    c = a @ a.T / 30
    rows = rs.randn(7, 15)
    levels = np.linspace(0, 1, 51)
    nll, _ = O.nll_curve(c, rows, levels, False)
    d = np.diag(c)
    R = c / np.sqrt(np.outer(d, d))
    lam, U = np.linalg.eigh(R)
    p2 = ((rows / np.sqrt(d)) @ U) ** 2
    for i, x in enumerate(levels):
        e = x * lam + 1 - x
        v = (0.5 * np.sum(p2.mean(axis=0) / e) + 0.5 * np.sum(np.log(d))
             + 0.5 * np.sum(np.log(e)) + 0.5 * 15 * math.log(2 * math.pi))
        assert abs(v - nll[i]) <= 1e-11 * abs(v)


@pytest.mark.parametrize("seed", range(8))
def test_biconvex_closed_form(seed):
    """Spec 2.8: cSb = P+(cS) (+ridge), cNb = cN - wD*T*|P-(cS)|."""
    rs = np.random.RandomState(seed)
    n, c, t = rs.randint(4, 30), rs.randint(8, 60), rs.randint(2, 7)
    r = quiet(datasets.random(n, c, t, 200 + seed, signal=rs.uniform(0.2, 2)))
    cSb, cNb = O.biconvex_closed(r["cN"], r["cS"], t, r["wD"])
    scale = max(np.abs(r["cSb"]).max(), np.abs(r["cNb"]).max())
    assert r["numiters"] in (0, 1)
    assert np.abs(cSb - r["cSb"]).max() <= 1e-9 * scale
    assert np.abs(cNb - r["cNb"]).max() <= 1e-9 * scale


def test_uneven_path_on_complete_data_equals_even():
    x = datasets.random(20, 35, 5, 21)
    lv = O.levels_of({})
    even = O.run_even(x, lv, {})
    for run in (O.run_uneven, O.run_missing):
        other = run(x, lv, {})
        assert other["shrinklevelN"] == even["shrinklevelN"]
        assert other["shrinklevelD"] == even["shrinklevelD"]
        assert other["numiters"] == even["numiters"]
        for k in ("mnS", "cN", "cS", "cNb", "cSb", "ncsnr", "eigvals_difference"):
            # cSb/cNb: the 1e-10 PSD ridge is a rounding coin flip (spec 3.5)
            ridge = 2e-10 if k in ("cSb", "cNb", "eigvals_difference") else 0
            tol = ridge + 1e-12 * np.abs(even[k]).max()
            np.testing.assert_allclose(other[k], even[k], rtol=0, atol=tol)


def test_whole_trial_nan_uses_valid_trials_only():
    """Dropping a trial by NaN equals keeping only the trials of a
    condition that are valid (noise average over k_c >= 2)."""
    x = datasets.random(6, 20, 4, 22)
    y = x.copy()
    y[2, 5, 1] = np.nan  # one unit: the whole trial goes
    r = quiet(y)
    assert r["ntrial_used"] == 3.0
    e = x[:, 5, [0, 2, 3]] - x[:, 5, [0, 2, 3]].mean(axis=1, keepdims=True)
    pooled = sum((x[:, c] - x[:, c].mean(1, keepdims=True)) @
                 (x[:, c] - x[:, c].mean(1, keepdims=True)).T / 3 for c in range(20) if c != 5)
    raw = (pooled + e @ e.T / 2) / 20
    np.testing.assert_allclose(O.shrink(raw, r["shrinklevelN"]), r["cN"], atol=1e-13)


def test_rank_rule_lowrank_picks_098():
    r = quiet(datasets.lowrank())
    assert r["shrinklevelD"] == 0.98 and r["singularD"] == "rank"
    assert np.isnan(r["nllD"][-1]) and np.isfinite(r["nllD"][:-1]).all()


def test_n1_keeps_diagonal():
    x = datasets.random(1, 20, 4, 11)
    r = quiet(x)
    e = x - x.mean(axis=2, keepdims=True)
    raw = np.sum(e[0] ** 2) / (3 * 20)
    assert r["shrinklevelN"] == 0.0 and abs(r["cN"][0, 0] - raw) < 1e-14
    s = quiet(x, {"_n1_scale": True})  # the numpy path's behaviour (spec G3)
    assert abs(s["cN"][0, 0] - s["shrinklevelN"] * raw) < 1e-14


def test_two_conditions_all_singular_level0():
    with pytest.warns(UserWarning, match="All covariance matrices were singular"):
        r = O.perform_gsn(datasets.random(4, 2, 3, 23))
    assert r["shrinklevelN"] == 0.0 and r["all_singularN"] and r["all_singularD"]


def test_zero_variance_unit():
    x = datasets.random(5, 20, 4, 24)
    x[3] = 1.5
    r = quiet(x)
    assert r["shrinklevelN"] == 0.0 and r["all_singularN"]
    assert r["ncsnr"][3] == 0.0 and np.all(np.isfinite(r["ncsnr"]))


def test_eigen_order_and_signs():
    r = quiet(datasets.random(12, 30, 4, 25))
    for k in ("signal", "difference"):
        d, v = r["eigvals_" + k], r["eigvecs_" + k]
        assert np.all(np.diff(d) <= 0)
        idx = np.argmax(np.abs(v), axis=0)
        assert np.all(v[idx, np.arange(v.shape[1])] > 0)
    m = r["cSb"]
    np.testing.assert_allclose((v := r["eigvecs_signal"]) * r["eigvals_signal"] @ v.T, m,
                               atol=1e-12 * np.abs(m).max())


def test_bad_input():
    with pytest.raises(O.GsnError):
        O.perform_gsn(np.zeros((3, 4)))
    with pytest.raises(O.GsnError, match="at least 2"):
        O.perform_gsn(np.zeros((3, 4, 1)))
    x = datasets.random(3, 10, 3, 26)
    x[:, 4, :] = np.nan
    with pytest.raises(O.GsnError):
        O.perform_gsn(x)


FIXTURES = O.__file__.replace("gsn_oracle.py", "upstream_gsn120.npz")


def _fixture_sets():
    with np.load(FIXTURES) as z:
        return sorted({k.split("/")[0] for k in z.files})


@pytest.mark.parametrize("name", _fixture_sets())
def test_matches_stored_upstream(name):
    """Inputs and outputs of upstream GSN 1.2 (numpy backend, commit 234c82a),
    written by compare_upstream.py --write-fixtures. The oracle in compat
    mode (no rank rule, N = 1 scaled) must reproduce them; in spec mode only
    N = 1 may differ."""
    with np.load(FIXTURES) as z:
        u = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(name + "/")}
    opt = ast.literal_eval(str(u["opt"]))  # a dict literal written by repr()
    for compat in (True, False):
        o = dict(opt, _rank_rule=False, _n1_scale=True) if compat else opt
        r = quiet(u["data"], o)
        if not compat and u["data"].shape[0] == 1:
            assert r["shrinklevelN"] == 0.0  # the deliberate N = 1 deviation
            continue
        for k in ("shrinklevelN", "shrinklevelD", "numiters"):
            assert r[k] == u[k], (k, r[k], u[k])
        for k in ("mnN", "mnS", "ncsnr", "cN", "cS", "cNb", "cSb", "eigvals_signal",
                  "eigvals_difference"):
            tol = 1e-9 * np.abs(u[k]).max() + (2e-10 if k in ("cSb", "cNb") or "eig" in k else 0)
            assert np.abs(r[k] - u[k]).max() <= tol, (k, np.abs(r[k] - u[k]).max())
        for kind in ("signal", "difference"):
            d = u["eigvals_" + kind]
            gap = np.minimum(np.r_[np.inf, -np.diff(d)], np.r_[-np.diff(d), np.inf])
            ok = gap > 1e-3 * np.abs(d).max()
            assert np.abs(r["eigvecs_" + kind][:, ok] - u["eigvecs_" + kind][:, ok]).max(initial=0) <= 1e-8
