"""Deterministic GSN test datasets (N units x C conditions x T trials).

Only RandomState/default_rng draws and small QRs: no multivariate_normal, whose
SVD makes regenerated data BLAS-dependent (spec section 5.3).
"""

import numpy as np


def random(n, c, t, seed=0, signal=1.0, noise=1.0):
    """Low-dimensional signal (up to 8 latent dims) plus white noise."""
    rs = np.random.RandomState(seed)
    k = min(8, n)
    u = rs.randn(n, k) / np.sqrt(k)
    z = rs.randn(k, c)
    return signal * (u @ z)[:, :, None] + noise * rs.randn(n, c, t)


def lowrank(n=50, c=40, t=3, seed=42):
    """Spec section 5.3 equivalence 10: rank-5 signal, rank-10 noise (0.3)."""
    rs = np.random.RandomState(seed)
    us, _ = np.linalg.qr(rs.randn(n, 5))
    un, _ = np.linalg.qr(rs.randn(n, 10))
    sig = us @ np.diag(np.linspace(1, 0.2, 5)) @ rs.randn(5, c)
    out = np.empty((n, c, t))
    for j in range(t):
        out[:, :, j] = sig + un @ np.diag(0.3 * np.linspace(1, 0.2, 10)) @ rs.randn(10, c)
    return out


def synthetic(n, c=80, t=4, seed=0):
    """Spec section 5.3 make_synthetic (the benchmark generator)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, 20)) / np.sqrt(20)
    z = rng.standard_normal((20, c))
    return (u @ z)[:, :, None] + rng.standard_normal((n, c, t))


def drop_trials(x, frac, seed=123):
    """Spec section 5.3 uneven recipe: NaN whole (c, t) cells in a shuffled
    order, never leaving a condition with fewer than 2 trials."""
    x = x.copy()
    n, c, t = x.shape
    rs = np.random.RandomState(seed)
    cells = [(ci, ti) for ci in range(c) for ti in range(t)]
    order = rs.permutation(len(cells))
    ndrop = int(round(frac * c * t))
    drops = np.zeros(c, dtype=int)
    done = 0
    for o in order:
        if done >= ndrop:
            break
        ci, ti = cells[o]
        if drops[ci] < t - 2:
            x[:, ci, ti] = np.nan
            drops[ci] += 1
            done += 1
    return x


def ragged(n, c, t, seed=0, kmin=2, ones=()):
    """Trailing-NaN padding: condition c keeps k_c in [kmin, t] trials;
    conditions listed in `ones` keep a single trial (forces n_min = 1)."""
    x = random(n, c, t, seed)
    rs = np.random.RandomState(seed + 1000)
    k = rs.randint(kmin, t + 1, size=c)
    for ci in ones:
        k[ci] = 1
    for ci in range(c):
        x[:, ci, k[ci]:] = np.nan
    return x


def partial_cells(x, ncells, seed=5):
    """NaN in a single unit of some (c, t) cells: whole-trial mode must drop
    the whole trial, per-unit mode only that entry."""
    x = x.copy()
    n, c, t = x.shape
    rs = np.random.RandomState(seed)
    for _ in range(ncells):
        ci = rs.randint(c)
        ti = rs.randint(t)
        if np.isnan(x[:, ci, :]).any(axis=0).sum() >= t - 2:
            continue
        x[rs.randint(n), ci, ti] = np.nan
    return x


def holes(x, frac, seed=7):
    """Per-unit missing entries (uneven='missing'): each (i, c, t) missing with
    probability frac, keeping >= 2 present trials per (unit, condition)."""
    x = x.copy()
    n, c, t = x.shape
    rs = np.random.RandomState(seed)
    miss = rs.random_sample(x.shape) < frac
    for i in range(n):
        for ci in range(c):
            if (~miss[i, ci]).sum() < 2:
                miss[i, ci, :] = False
    x[miss] = np.nan
    return x


def catalog():
    """name -> (data, opt) for the oracle-vs-upstream sweep and the tests."""
    d = {}
    d["even_30x40x4"] = (random(30, 40, 4, 1), {})
    d["even_50x60x5"] = (random(50, 60, 5, 2), {})
    d["even_10x30x4_noshrink"] = (random(10, 30, 4, 3), {"wantshrinkage": 0})
    d["even_25x80x6"] = (random(25, 80, 6, 4, signal=2.0), {})
    d["lowrank_50x40x3"] = (lowrank(), {})
    d["rankdef_60x20x3"] = (random(60, 20, 3, 5), {})
    d["rankdef_40x16x2"] = (random(40, 16, 2, 6), {})
    d["rankdef_15x8x3"] = (random(15, 8, 3, 7), {})
    d["tiny_5x12x3"] = (random(5, 12, 3, 8), {})
    d["T2_20x30x2"] = (random(20, 30, 2, 9), {})
    d["C3_6x3x4"] = (random(6, 3, 4, 10), {})
    d["N1_1x20x4"] = (random(1, 20, 4, 11), {})
    d["levels_12x25x4"] = (random(12, 25, 4, 12), {"shrinklevels": [0.0, 0.3, 0.65, 1.0]})
    d["synthetic_100"] = (synthetic(100), {})
    d["uneven_15x50x5_15pct"] = (drop_trials(random(15, 50, 5, 13), 0.15), {})
    d["uneven_15x50x5_15pct_noshrink"] = (drop_trials(random(15, 50, 5, 13), 0.15),
                                          {"wantshrinkage": 0})
    d["uneven_40x60x4_30pct"] = (drop_trials(random(40, 60, 4, 14), 0.30), {})
    d["ragged_12x60x6"] = (ragged(12, 60, 6, 15), {})
    d["ragged_ones_10x40x5"] = (ragged(10, 40, 5, 16, ones=(3, 17)), {})
    d["partial_20x30x5"] = (partial_cells(random(20, 30, 5, 17), 25), {})
    d["missing_7x30x6_10pct"] = (holes(random(7, 30, 6, 18), 0.10), {"uneven": "missing"})
    d["missing_8x40x6_25pct"] = (holes(random(8, 40, 6, 19), 0.25), {"uneven": "missing"})
    d["missing_12x40x5_partial"] = (partial_cells(random(12, 40, 5, 20), 30),
                                    {"uneven": "missing"})
    return d
