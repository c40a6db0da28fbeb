#!/usr/bin/env python3
"""The oracle against the real upstream GSN 1.2 (not a pytest file: needs a
checkout of cvnlab/GSN and scipy).

    python3 tests/gsn/compare_upstream.py --gsn-repo /tmp/gsn-upstream [--random 60]

For every dataset of datasets.catalog() (plus --random K random ones: even,
whole-trial NaN, ragged, per-unit missing) it runs upstream
perform_gsn(backend='numpy', returns=all eight) and the oracle twice: in
"compat" mode (no rank rule, N = 1 scaled like the numpy path) and in "spec"
mode (the neuroq decisions). It prints the selected levels, numiters and the
worst max|diff|/max|upstream| over all arrays (eigenvectors: sign-normalized
columns whose eigenvalue is separated by > 1e-6 x max|lambda|).
"""

import argparse
import pathlib
import sys
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datasets  # noqa: E402
import gsn_oracle as O  # noqa: E402

ARRAYS = ["mnN", "mnS", "ncsnr", "cN", "cS", "cNb", "cSb", "eigvals_signal", "eigvals_difference"]


def compare(up, name, data, opt, compat):
    o2 = dict(opt, backend="numpy", wantverbose=0, returns=list(O.RETURNS_ALL))
    oo = dict(opt, _rank_rule=False, _n1_scale=True) if compat else dict(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = up(data.copy(), o2)
        r = O.perform_gsn(data, oo)
    same = (u["shrinklevelN"] == r["shrinklevelN"] and u["shrinklevelD"] == r["shrinklevelD"]
            and u["numiters"] == r["numiters"])
    worst, wk = 0.0, ""
    for k in ARRAYS:
        a, b = np.asarray(u[k], float), np.asarray(r[k], float)
        e = np.abs(a - b).max() / max(np.abs(a).max(), 1e-300)
        if e > worst:
            worst, wk = e, k
    for k in ("signal", "difference"):
        a, b, d = u["eigvecs_" + k], r["eigvecs_" + k], r["eigvals_" + k]
        gap = np.minimum(np.r_[np.inf, -np.diff(d)], np.r_[-np.diff(d), np.inf])
        ok = gap > 1e-6 * max(np.abs(d).max(), 1e-300)
        e = np.abs(a[:, ok] - b[:, ok]).max() if ok.any() else 0.0
        if e > worst:
            worst, wk = e, "eigvecs_" + k
    print("%-30s %-6s aN %.2f/%.2f aD %.2f/%.2f it %d/%d %s max_rel %.1e (%s) singular %s,%s" % (
        name, "compat" if compat else "spec", u["shrinklevelN"], r["shrinklevelN"],
        u["shrinklevelD"], r["shrinklevelD"], u["numiters"], r["numiters"],
        "same" if same else "DIFF", worst, wk, r["singularN"], r["singularD"]))
    return same, worst


def random_sets(k):
    rs = np.random.RandomState(99)
    for s in range(k):
        kind = s % 4
        n, c, t = int(rs.randint(3, 40)), int(rs.randint(6, 50)), int(rs.randint(2, 7))
        if kind == 0:
            yield "r%d_even" % s, datasets.random(n, c, t, 100 + s), {}
        elif kind == 1:
            yield "r%d_drop" % s, datasets.drop_trials(datasets.random(n, c, max(t, 3), 100 + s), 0.25, s), {}
        elif kind == 2:
            yield "r%d_ragged" % s, datasets.ragged(n, c, max(t, 3), 100 + s,
                                                     ones=(0,) if s % 8 == 2 else ()), {}
        else:
            yield "r%d_missing" % s, datasets.holes(datasets.random(n, max(c, 20), max(t, 4), 100 + s),
                                                    0.15, s), {"uneven": "missing"}


FIXTURE_SETS = ("tiny_5x12x3", "rankdef_15x8x3", "C3_6x3x4", "N1_1x20x4", "T2_20x30x2",
                "levels_12x25x4", "even_10x30x4_noshrink", "uneven_15x50x5_15pct",
                "ragged_ones_10x40x5", "partial_20x30x5", "missing_7x30x6_10pct",
                "missing_12x40x5_partial")


def write_fixtures(up, path):
    """One .npz: <set>/data, <set>/opt (repr), <set>/<output> from upstream."""
    cat = datasets.catalog()
    out = {}
    for name in FIXTURE_SETS:
        data, opt = cat[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = up(data.copy(), dict(opt, backend="numpy", wantverbose=0, returns=list(O.RETURNS_ALL)))
        out[name + "/data"] = data
        out[name + "/opt"] = np.array(repr(opt))
        for k in ARRAYS + ["eigvecs_signal", "eigvecs_difference", "shrinklevelN", "shrinklevelD",
                           "numiters"]:
            out[name + "/" + k] = np.asarray(u[k])
    np.savez_compressed(path, **out)
    print("wrote", path, len(FIXTURE_SETS), "sets")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gsn-repo", required=True)
    ap.add_argument("--random", type=int, default=0)
    ap.add_argument("--write-fixtures", metavar="FILE",
                    help="store inputs + upstream outputs of the small catalog sets (.npz)")
    args = ap.parse_args()
    sys.path.insert(0, args.gsn_repo)
    from gsn.perform_gsn import perform_gsn as up

    if args.write_fixtures:
        write_fixtures(up, args.write_fixtures)
        return

    sets = [(k, d, o) for k, (d, o) in datasets.catalog().items()] + list(random_sets(args.random))
    tally = {True: [0, 0, 0.0], False: [0, 0, 0.0]}
    for name, data, opt in sets:
        for compat in (True, False):
            same, worst = compare(up, name, data, opt, compat)
            t = tally[compat]
            t[0] += same
            t[1] += 1
            t[2] = max(t[2], worst) if same else t[2]
    for compat in (True, False):
        t = tally[compat]
        print("%s: levels+numiters identical on %d/%d; worst max_rel where identical %.1e" % (
            "compat" if compat else "spec", t[0], t[1], t[2]))


if __name__ == "__main__":
    main()
