"""neuroq's gsn job (through neuroq-worker, standalone) against the numpy oracle.

Tolerances (spec "Decisions"): shrinklevelN/D and numiters exact (the
default levels are numpy's linspace(0, 1, 51) bit for bit, so the selected
level is == the oracle's); every float64 output array within
1e-9 x max|oracle|, plus 2e-10 absolute on cSb/cNb/eigenvalues for the
1e-10 PSD ridge that two correct implementations add or not by rounding
(spec 3.5); eigenvectors through subspace projectors of eigenvalue clusters
and sign-normalized columns where an eigenvalue is well separated.
float32: same selected levels, arrays within 1e-4 x max|oracle|.
The worker comes from NEUROQ_BUILD (see conftest.py); without it every test
here skips.
"""

import warnings

import numpy as np
import pytest

import datasets
import gsn_oracle as O

ALL_RETURNS = list(O.RETURNS_ALL)
ALWAYS = ("mnN", "mnS", "ncsnr")
RIDGE_KEYS = ("cSb", "cNb", "eigvals_signal", "eigvals_difference")


def oracle(data, params):
    opt = {k: params[k] for k in ("wantshrinkage", "shrinklevels", "uneven") if k in params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return O.perform_gsn(data, opt)


def max_abs(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a).max()) if a.size else 0.0


def check_levels(got, ref, where):
    for k in ("shrinklevelN", "shrinklevelD"):
        assert k in got, "%s: result.json lacks %s" % (where, k)
        assert float(got[k]) == ref[k], \
            "%s: %s neuroq %r oracle %r" % (where, k, got[k], ref[k])
    assert int(got["numiters"]) == ref["numiters"], \
        "%s: numiters neuroq %r oracle %r" % (where, got["numiters"], ref["numiters"])


def check_eigvecs(v, d_ref, v_ref, rel, where):
    """v against v_ref: projectors of eigenvalue clusters (gap < 1e-6 x
    max|lambda| joins a cluster), plus sign-normalized columns whose
    eigenvalue is separated from its neighbours by >= 1e-3 x max|lambda|."""
    n = len(d_ref)
    v = np.asarray(v, dtype=np.float64)
    assert v.shape == (n, n), "%s: eigvecs shape %s" % (where, v.shape)
    scale = max(max_abs(d_ref), 1e-300)
    gaps = -np.diff(d_ref)
    start = 0
    for i in range(n):
        if i == n - 1 or gaps[i] >= 1e-6 * scale:
            sl = slice(start, i + 1)
            p = v[:, sl] @ v[:, sl].T
            q = v_ref[:, sl] @ v_ref[:, sl].T
            lo = gaps[start - 1] if start > 0 else np.inf
            hi = gaps[i] if i < n - 1 else np.inf
            # first-order perturbation: error / gap
            tol = max(1e-9, rel * scale / min(lo, hi) * 10)
            assert max_abs(p - q) <= tol, "%s: eigenspace %d..%d projector off by %.2e" % (
                where, start, i, max_abs(p - q))
            if i == start and min(lo, hi) >= 1e-3 * scale:
                assert max_abs(v[:, i] - v_ref[:, i]) <= tol, \
                    "%s: eigenvector %d (sign rule?) off by %.2e" % (where, i, max_abs(v[:, i] - v_ref[:, i]))
            start = i + 1


def compare(arrays, scalars, ref, returns, where, rel=1e-9, ridge=2e-10):
    check_levels(scalars, ref, where)
    want = set(ALWAYS) | set(returns)
    got_keys = {k for k in arrays if k in ALWAYS or k in ALL_RETURNS}
    assert got_keys == want, "%s: outputs %s, asked for %s" % (where, sorted(got_keys), sorted(want))
    for k in sorted(want):
        if k.startswith("eigvecs_"):
            continue
        a = np.asarray(arrays[k], dtype=np.float64)
        r = np.asarray(ref[k], dtype=np.float64)
        assert a.shape == r.shape, "%s: %s shape %s, oracle %s" % (where, k, a.shape, r.shape)
        tol = rel * max_abs(r) + (ridge if k in RIDGE_KEYS else 0.0)
        err = max_abs(a - r)
        assert err <= tol, "%s: %s off by %.3e (tol %.3e, max %.3e)" % (where, k, err, tol, max_abs(r))
    for kind in ("signal", "difference"):
        if "eigvecs_" + kind in want:
            check_eigvecs(arrays["eigvecs_" + kind], ref["eigvals_" + kind],
                          ref["eigvecs_" + kind], rel, where + " eigvecs_" + kind)
    # optional diagnostics
    for tag in ("N", "D"):
        nll = arrays.get("nll" + tag)
        if nll is not None and ref.get("nll" + tag) is not None:
            r = ref["nll" + tag]
            assert np.array_equal(np.isnan(nll), np.isnan(r)), "%s: nll%s NaN mask %s vs %s" % (
                where, tag, np.flatnonzero(np.isnan(nll)), np.flatnonzero(np.isnan(r)))
            ok = ~np.isnan(r)
            # float64: rel of the curve's scale; float32: 1e-3 of each value
            # (near-singular levels amplify f32 rounding; only the argmin matters)
            tol = rel * (max_abs(r[ok]) + 1) if rel < 1e-6 else 1e-3 * (np.abs(r[ok]) + 1)
            err = np.abs(nll[ok] - r[ok])
            assert np.all(err <= tol), "%s: nll%s off by %.2e at level %s" % (
                where, tag, err.max(initial=0), np.flatnonzero(ok)[np.argmax(err)] if ok.any() else -1)
        s = scalars.get("singular" + tag)
        if s is not None:
            assert (s == "rank") == (ref["singular" + tag] == "rank"), \
                "%s: singular%s neuroq %r oracle %r" % (where, tag, s, ref["singular" + tag])


# ------------------------------------------------------------------ cases

def _cases():
    c = {}
    c["random_30x40x4"] = (datasets.random(30, 40, 4, 1), {})
    c["random_50x60x5"] = (datasets.random(50, 60, 5, 2), {})
    c["lowrank_50x40x3"] = (datasets.lowrank(), {})
    c["rankdef_60x20x3"] = (datasets.random(60, 20, 3, 5), {})   # N >= C_tr, noise too
    c["rankdef_40x16x2"] = (datasets.random(40, 16, 2, 6), {})
    c["uneven_15x50x5_15pct"] = (datasets.drop_trials(datasets.random(15, 50, 5, 13), 0.15), {})
    c["uneven_40x60x4_30pct"] = (datasets.drop_trials(datasets.random(40, 60, 4, 14), 0.30), {})
    c["ragged_12x60x6"] = (datasets.ragged(12, 60, 6, 15), {})
    c["ragged_nmin1_10x40x5"] = (datasets.ragged(10, 40, 5, 16, ones=(3, 17)), {})
    c["partial_nan_20x30x5"] = (datasets.partial_cells(datasets.random(20, 30, 5, 17), 25), {})
    c["missing_7x30x6_10pct"] = (datasets.holes(datasets.random(7, 30, 6, 18), 0.10),
                                 {"uneven": "missing"})
    c["missing_8x40x6_25pct"] = (datasets.holes(datasets.random(8, 40, 6, 19), 0.25),
                                 {"uneven": "missing"})
    c["missing_12x40x5_partial"] = (datasets.partial_cells(datasets.random(12, 40, 5, 20), 30),
                                    {"uneven": "missing"})
    c["N1_1x20x4"] = (datasets.random(1, 20, 4, 11), {})
    c["T2_20x30x2"] = (datasets.random(20, 30, 2, 9), {})
    c["C3_6x3x4"] = (datasets.random(6, 3, 4, 10), {})             # V = 1 held-out condition
    c["C2_4x2x3_all_singular"] = (datasets.random(4, 2, 3, 23), {})  # V = 0
    c["levels_12x25x4"] = (datasets.random(12, 25, 4, 12), {"shrinklevels": [0.0, 0.3, 0.65, 1.0]})
    c["noshrink_10x30x4"] = (datasets.random(10, 30, 4, 3), {"wantshrinkage": False})
    c["noshrink_uneven"] = (datasets.drop_trials(datasets.random(15, 50, 5, 13), 0.15),
                            {"wantshrinkage": False})
    c["synthetic_200"] = (datasets.synthetic(200), {})
    c["synthetic_drop_400"] = (datasets.drop_trials(datasets.synthetic(400, 80, 5), 0.2), {})
    return c


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_gsn_matches_oracle(worker, tmp_path, name):
    data, params = CASES[name]
    params = dict(params, returns=ALL_RETURNS)
    ref = oracle(data, params)
    arrays, scalars, _ = worker.run(tmp_path / "job", data, params)
    compare(arrays, scalars, ref, ALL_RETURNS, name)


@pytest.mark.parametrize("name", ["random_30x40x4", "lowrank_50x40x3", "rankdef_60x20x3",
                                  "uneven_40x60x4_30pct", "missing_8x40x6_25pct", "N1_1x20x4"])
@pytest.mark.parametrize("nll,biconvex", [("cholesky", "loop"), ("spectral", "closed"),
                                          ("cholesky", "closed")])
def test_algorithm_variants_match_oracle(worker, tmp_path, name, nll, biconvex):
    data, params = CASES[name]
    params = dict(params, returns=ALL_RETURNS, nll=nll, biconvex=biconvex)
    ref = oracle(data, params)
    arrays, scalars, _ = worker.run(tmp_path / "job", data, params)
    compare(arrays, scalars, ref, ALL_RETURNS, "%s nll=%s biconvex=%s" % (name, nll, biconvex))


@pytest.mark.parametrize("returns", [None, ["cSb"], ["cN", "cNb"], ["eigvecs_signal", "eigvals_signal"],
                                     ["eigvals_difference", "eigvecs_difference", "cS"]])
def test_returns_selects_outputs(worker, tmp_path, returns):
    data = CASES["random_30x40x4"][0]
    params = {} if returns is None else {"returns": returns}
    ref = oracle(data, params)
    arrays, scalars, _ = worker.run(tmp_path / "job", data, params)
    compare(arrays, scalars, ref, O.RETURNS_DEFAULT if returns is None else returns,
            "returns=%s" % returns)


def _margin(nll):
    """Relative gap between the best and the second-best finite NLL."""
    f = np.sort(nll[np.isfinite(nll)])
    return (f[1] - f[0]) / abs(f[0]) if len(f) > 1 else np.inf


@pytest.mark.parametrize("name", ["random_30x40x4", "ragged_12x60x6", "synthetic_200"])
def test_float32_precision(worker, tmp_path, name):
    data, params = CASES[name]
    params = dict(params, returns=ALL_RETURNS, precision="f32")
    ref = oracle(data, params)
    # the test is only meaningful where f32 rounding cannot flip the argmin
    assert _margin(ref["nllN"]) > 1e-5 and _margin(ref["nllD"]) > 1e-5
    arrays, scalars, _ = worker.run(tmp_path / "job", data, params)
    compare(arrays, scalars, ref, ALL_RETURNS, name + " f32", rel=1e-4, ridge=0.0)


def test_float32_input_array(worker, tmp_path):
    """A float32 .npy input is either computed (like GSN's numpy path, at least
    in float32) or refused cleanly with an error file; never a crash."""
    data = CASES["random_30x40x4"][0]
    ref = oracle(data.astype(np.float32).astype(np.float64), {})
    arrays, scalars, proc = worker.run(tmp_path / "job", data.astype(np.float32), {}, check=False)
    if proc.returncode == 1:
        assert (tmp_path / "job" / "error").read_text().strip()
        return
    assert proc.returncode == 0, proc.stderr[-500:]
    compare(arrays, scalars, ref, O.RETURNS_DEFAULT, "f32 input", rel=1e-4, ridge=0.0)


def test_deterministic(worker, tmp_path):
    data, params = CASES["uneven_40x60x4_30pct"]
    a, s, _ = worker.run(tmp_path / "a", data, params)
    b, t, _ = worker.run(tmp_path / "b", data, params)
    assert s["shrinklevelN"] == t["shrinklevelN"] and s["numiters"] == t["numiters"]
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


@pytest.mark.parametrize("what", ["one_trial", "two_d", "all_nan_condition", "inf", "bad_uneven"])
def test_bad_input_fails_cleanly(worker, tmp_path, what):
    data = datasets.random(5, 10, 3, 30)
    params = {}
    if what == "one_trial":
        data = data[:, :, :1]
    elif what == "two_d":
        data = data[:, :, 0]
    elif what == "all_nan_condition":
        data[:, 4, :] = np.nan
    elif what == "inf":
        data[1, 2, 0] = np.inf
    else:
        params = {"uneven": "sideways"}
    _, _, proc = worker.run(tmp_path / "job", data, params, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])
    err = (tmp_path / "job" / "error").read_text()
    code, name = err.split("\n")[0].split()[:2]
    assert int(code) > 0 and name.isupper()
    assert len(err.split("\n", 1)[1].strip()) > 0, "error file has no message"


def _cuda_device(worker):
    for dev in worker.probe():
        if dev.startswith("cuda"):
            return dev
    return None


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["random_50x60x5", "lowrank_50x40x3", "uneven_40x60x4_30pct",
                                  "missing_8x40x6_25pct", "synthetic_200"])
def test_cuda_matches_cpu(worker, tmp_path, name):
    dev = _cuda_device(worker)
    if dev is None:
        pytest.skip("neuroq-worker probe lists no cuda device")
    data, params = CASES[name]
    params = dict(params, returns=ALL_RETURNS)
    cpu, s_cpu, _ = worker.run(tmp_path / "cpu", data, params)
    gpu, s_gpu, _ = worker.run(tmp_path / "gpu", data, params, device=dev)
    for k in ("shrinklevelN", "shrinklevelD", "numiters"):
        assert s_cpu[k] == s_gpu[k], (k, s_cpu[k], s_gpu[k])
    for k in cpu:
        if k.startswith("eigvecs_"):
            kind = k[len("eigvecs_"):]
            check_eigvecs(gpu[k], cpu["eigvals_" + kind], cpu[k], 1e-8, name + " cuda " + k)
            continue
        tol = 1e-8 * max_abs(cpu[k]) + (2e-10 if k in RIDGE_KEYS else 0.0)
        if k.startswith("nll"):
            assert np.array_equal(np.isnan(cpu[k]), np.isnan(gpu[k])), k
            ok = ~np.isnan(cpu[k])
            assert max_abs(cpu[k][ok] - gpu[k][ok]) <= 1e-8 * max_abs(cpu[k][ok]) + 1e-9, k
            continue
        assert max_abs(cpu[k] - gpu[k]) <= tol, (k, max_abs(cpu[k] - gpu[k]), tol)
    # and the GPU against the oracle directly
    compare(gpu, s_gpu, oracle(data, params), ALL_RETURNS, name + " cuda", rel=1e-8)


def test_levels_and_warnings_in_result_json(worker, tmp_path):
    """What a CLI user reads: result.json lists GSN 1.2's warnings (C = 2:
    nothing held out, both estimators all singular) and the evaluated levels
    are numpy's linspace bit for bit."""
    arrays, scalars, _ = worker.run(tmp_path / "c2", datasets.random(4, 2, 3, 23), {})
    w = scalars["warnings"]
    assert len(w) == 2 and all(x.startswith("All covariance matrices were singular. (")
                               for x in w)
    assert "noise" in w[0] and "data" in w[1]
    np.testing.assert_array_equal(arrays["shrinklevels"].view(np.uint64),
                                  np.linspace(0, 1, 51).view(np.uint64))
    _, scalars, _ = worker.run(tmp_path / "even", datasets.random(6, 20, 3, 1), {})
    assert scalars["warnings"] == []
