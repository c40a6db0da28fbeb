"""Independent numpy implementation of perform_gsn (GSN 1.2, numpy path).

The test oracle for neuroq's gsn job, written from /work/shared/specs/gsn.md
(section numbers below refer to it), not from the upstream code. It is meant
to be obviously right, not fast: one Cholesky per shrink level, loops over
conditions, float64 throughout.

Deliberate choices of the spec's "Decisions" (both switchable so the oracle
can also be compared with upstream bit for bit):
  * alpha = 1 is singular when the rank bound of section 3.3 says so, or when
    the Cholesky fails (opt['_rank_rule'], default True);
  * N = 1 keeps the diagonal, i.e. no alpha scaling of the 1x1 covariance
    (opt['_n1_scale'], default False; True reproduces the numpy path).
"""

import math
import warnings

import numpy as np

RETURNS_DEFAULT = ("cN", "cS", "cNb", "cSb")
RETURNS_ALL = RETURNS_DEFAULT + ("eigvecs_signal", "eigvals_signal",
                                 "eigvecs_difference", "eigvals_difference")
LEAVEOUT = 5
BICONVEX_CAP = 100
PSD_RIDGE = 1e-10


class GsnError(ValueError):
    pass


# ---------------------------------------------------------------- helpers

def perm(n):
    """Section 2.2: argsort of n MT19937(42) doubles; depends only on n."""
    return np.argsort(np.random.RandomState(42).random_sample(n), kind="stable")


def split(n):
    """(held-out, training) indices: the first round(n/5) of perm(n) held out."""
    p = perm(n)
    v = int(round(n / LEAVEOUT))
    return p[:v], p[v:]


def levels_of(opt):
    if opt.get("shrinklevels") is not None:
        return np.atleast_1d(np.asarray(opt["shrinklevels"], dtype=np.float64))
    if opt.get("wantshrinkage", 1):
        return np.linspace(0, 1, 51)
    return np.array([1.0])


def shrink(c, alpha, n1_scale=False):
    """Section 2.3: alpha*c off the diagonal, the diagonal kept."""
    if c.shape[0] == 1 and n1_scale:
        return alpha * c
    out = alpha * c
    np.fill_diagonal(out, np.diag(c))
    return out


def chol(m):
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        return None


def nll_curve(c, rows, levels, rank_singular, n1_scale=False):
    """Held-out NLL for every level (section 2.3); NaN where singular.

    rows: M x N zero-mean held-out rows. rank_singular: the rank rule says
    c (= level 1) is singular. Returns (nll, singular_rule) where the rule is
    'rank', 'factor' or 'none' for the alpha = 1 level.
    """
    n = c.shape[0]
    nll = np.full(len(levels), np.nan)
    rule = "none"
    for i, a in enumerate(levels):
        if a == 1.0 and rank_singular:
            rule = "rank"
            continue
        L = chol(shrink(c, a, n1_scale))
        if L is None:
            if a == 1.0:
                rule = "factor"
            continue
        if rows.shape[0] == 0:
            quad = np.nan  # mean of nothing (C <= 2: no held-out set)
        else:
            z = np.linalg.solve(L, rows.T)
            quad = 0.5 * np.mean(np.sum(z * z, axis=0))
        nll[i] = quad + np.sum(np.log(np.diag(L))) + 0.5 * n * math.log(2 * math.pi)
    return nll, rule


def pick(nll, levels):
    """nanargmin (first on ties); all NaN -> index 0 with the warning."""
    if np.all(np.isnan(nll)):
        warnings.warn("All covariance matrices were singular.")
        return 0, True
    return int(np.nanargmin(nll)), False


def nearest_psd(m):
    """Section 2.7."""
    m = (m + m.T) / 2
    if chol(m) is not None:
        return m
    d, v = np.linalg.eigh(m)
    p = (v * np.maximum(d, 0)) @ v.T
    p = (p + p.T) / 2
    if chol(p) is None:
        p = p + PSD_RIDGE * np.eye(p.shape[0])
    return p


def pearson(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def biconvex(cN, cD, ncond, divisor, nweight, alpha_mat=None):
    """Section 2.8. divisor: the trial count of the signal step (T, or n_min
    for uneven data); nweight: n of the weights (T, ntrialBC, n_eff).
    alpha_mat: per-entry bias factor (missing data) replacing 1/divisor."""
    n = nweight
    den = ncond * n * n * (n - 1) + ncond - 1
    wN = ncond * (n - 1) * n * n / den
    wD = (ncond - 1) / den
    nunits = cN.shape[0]

    def noise_part(cnb):
        return cnb * alpha_mat if alpha_mat is not None else cnb / divisor

    cNb = cN
    s_old = cD - noise_part(cN)
    n_old = cN
    numiters = 0
    cSb = None
    for _ in range(BICONVEX_CAP):
        cSb = nearest_psd(cD - noise_part(cNb))
        cNb = nearest_psd(wN * cN + wD * n * (cD - cSb))
        if nunits == 1:
            conv = (abs(s_old - cSb).item() < 1e-5 and abs(n_old - cNb).item() < 1e-5)
        else:
            conv = pearson(s_old, cSb) > 0.999 and pearson(n_old, cNb) > 0.999
        if conv:
            break
        numiters += 1
        s_old, n_old = cSb, cNb
    return cSb, cNb, numiters, (wN, wD)


def biconvex_closed(cN, cS, ntrial, wD):
    """Section 2.8 closed form (valid when the noise argument stays PD)."""
    lam, u = np.linalg.eigh((cS + cS.T) / 2)
    pplus = (u * np.maximum(lam, 0)) @ u.T
    pminus = (u * np.minimum(lam, 0)) @ u.T
    pplus = (pplus + pplus.T) / 2
    if chol(pplus) is None:
        pplus = pplus + PSD_RIDGE * np.eye(cS.shape[0])
    cNb = cN + wD * ntrial * pminus
    return pplus, (cNb + cNb.T) / 2


def eig_desc(m):
    """Section 2.9: descending eigenvalues, largest-|.| entry of each column
    positive (first on ties; zero counts as positive)."""
    d, v = np.linalg.eigh(m)
    order = np.argsort(-d, kind="stable")
    d, v = d[order], v[:, order].copy()
    for j in range(v.shape[1]):
        k = int(np.argmax(np.abs(v[:, j])))
        if v[k, j] < 0:
            v[:, j] = -v[:, j]
    return d, v


def ncsnr_of(cS, cN):
    s = np.sqrt(np.maximum(np.diag(cS), 0))
    n = np.sqrt(np.maximum(np.diag(cN), 0))
    out = np.zeros_like(s)
    ok = n > 0
    out[ok] = s[ok] / n[ok]
    return out


# ---------------------------------------------------------- estimators

def data_cov_select(D, levels, opt, res, tag):
    """Section 2.5 on a C x N matrix of condition means: returns (mu, c_all,
    level index). Records the NLL curve and the singular rule in res."""
    C, N = D.shape
    ho, tr = split(C)
    Dtr = D[tr]
    mu_tr = Dtr.mean(axis=0)
    e = Dtr - mu_tr
    c_tr = e.T @ e / (len(tr) - 1)
    rows = D[ho] - mu_tr
    rank_sing = opt.get("_rank_rule", True) and (len(tr) - 1 < N)
    nll, rule = nll_curve(c_tr, rows, levels, rank_sing, opt.get("_n1_scale", False))
    k, alls = pick(nll, levels)
    mu = D.mean(axis=0)
    e = D - mu
    c_all = e.T @ e / (C - 1)
    res["nll" + tag], res["singular" + tag], res["all_singular" + tag] = nll, rule, alls
    return mu, c_all, k


def noise_even(X, levels, opt, res):
    """Section 2.4 (even trials)."""
    N, C, T = X.shape
    ho, tr = split(C)
    E = X - X.mean(axis=2, keepdims=True)

    def pooled(conds):
        acc = np.zeros((N, N))
        for c in conds:
            acc += E[:, c, :] @ E[:, c, :].T / (T - 1)
        return acc / len(conds)

    c_tr = pooled(tr)
    rows = np.concatenate([E[:, c, :].T for c in ho], axis=0) if len(ho) else np.zeros((0, N))
    rank_sing = opt.get("_rank_rule", True) and (len(tr) * (T - 1) < N)
    nll, rule = nll_curve(c_tr, rows, levels, rank_sing, opt.get("_n1_scale", False))
    k, alls = pick(nll, levels)
    res["nllN"], res["singularN"], res["all_singularN"] = nll, rule, alls
    return pooled(range(C)), k


def noise_uneven(X, valid, levels, opt, res):
    """Section 2.10 noise: average over conditions with k_c >= 2 of each
    condition's unbiased covariance of its valid trials."""
    N, C, T = X.shape
    k = valid.sum(axis=1)
    ho, tr = split(C)

    def resid(c):
        x = X[:, c, valid[c]]
        return x - x.mean(axis=1, keepdims=True)

    def pooled(conds):
        use = [c for c in conds if k[c] >= 2]
        acc = np.zeros((N, N))
        for c in use:
            e = resid(c)
            acc += e @ e.T / (k[c] - 1)
        return acc / len(use)

    if not any(k[c] >= 2 for c in tr):
        raise GsnError("no training condition with >= 2 valid trials")
    if not any(k[c] >= 2 for c in ho):
        raise GsnError("no held-out condition with >= 2 valid trials")
    c_tr = pooled(tr)
    rows = np.concatenate([resid(c).T for c in ho if k[c] >= 2], axis=0)
    dof = sum(k[c] - 1 for c in tr if k[c] >= 2)
    rank_sing = opt.get("_rank_rule", True) and (dof < N)
    nll, rule = nll_curve(c_tr, rows, levels, rank_sing, opt.get("_n1_scale", False))
    kk, alls = pick(nll, levels)
    res["nllN"], res["singularN"], res["all_singularN"] = nll, rule, alls
    return pooled(range(C)), kk


def balanced_means(X, valid):
    """Section 2.10 data: the first n_min of each condition's valid trials
    reordered by perm(k_c), averaged. Returns (C x N means, n_min)."""
    N, C, T = X.shape
    k = valid.sum(axis=1)
    nmin = int(k.min())
    D = np.empty((C, N))
    for c in range(C):
        idx = np.flatnonzero(valid[c])[perm(int(k[c]))][:nmin]
        D[c] = X[:, c, idx].mean(axis=1)
    return D, nmin


# ---------------------------------------------------------------- paths

def _finish(res, cN, cD, mu, divisor, nweight, C, diffdiv, alpha_mat=None):
    N = cN.shape[0]
    cS = cD - (cN * alpha_mat if alpha_mat is not None else cN / divisor)
    res["mnN"] = np.zeros((1, N))
    res["mnS"] = mu.reshape(1, N)
    res["cN"], res["cD"], res["cS"] = cN, cD, cS
    res["ncsnr"] = ncsnr_of(cS, cN)
    cSb, cNb, it, (wN, wD) = biconvex(cN, cD, C, divisor, nweight, alpha_mat)
    res["cSb"], res["cNb"], res["numiters"] = cSb, cNb, it
    res["wN"], res["wD"] = wN, wD
    res["eigvals_signal"], res["eigvecs_signal"] = eig_desc(cSb)
    if alpha_mat is not None:
        diff = cSb - cNb * alpha_mat
    else:
        diff = cSb - cNb / diffdiv
    res["eigvals_difference"], res["eigvecs_difference"] = eig_desc(diff)
    return res


def run_even(X, levels, opt):
    N, C, T = X.shape
    res = {"levels": levels, "path": "even", "ntrial_used": float(T)}
    c_all, kN = noise_even(X, levels, opt, res)
    D = X.mean(axis=2).T
    mu, d_all, kD = data_cov_select(D, levels, opt, res, "D")
    n1 = opt.get("_n1_scale", False)
    res["shrinklevelN"], res["shrinklevelD"] = float(levels[kN]), float(levels[kD])
    cN = shrink(c_all, levels[kN], n1)
    cD = shrink(d_all, levels[kD], n1)
    return _finish(res, cN, cD, mu, T, T, C, T)


def run_uneven(X, levels, opt):
    N, C, T = X.shape
    valid = ~np.isnan(X).any(axis=0)  # C x T
    k = valid.sum(axis=1)
    if (k < 1).any():
        raise GsnError("every condition needs at least one valid trial")
    res = {"levels": levels, "path": "uneven"}
    c_all, kN = noise_uneven(X, valid, levels, opt, res)
    D, nmin = balanced_means(X, valid)
    mu, d_all, kD = data_cov_select(D, levels, opt, res, "D")
    ntbc = k[k > 1].sum() / C
    if ntbc < 1:
        warnings.warn("ntrialBC is lopsided! setting to 1")
        ntbc = 1.0
    n1 = opt.get("_n1_scale", False)
    res["shrinklevelN"], res["shrinklevelD"] = float(levels[kN]), float(levels[kD])
    res["ntrial_used"], res["ntrialBC"] = float(nmin), float(ntbc)
    cN = shrink(c_all, levels[kN], n1)
    cD = shrink(d_all, levels[kD], n1)
    return _finish(res, cN, cD, mu, nmin, ntbc, C, k.mean())


def run_missing(X, levels, opt):
    """Section 2.11: per-unit missing data."""
    N, C, T = X.shape
    M = ~np.isnan(X)
    Xz = np.where(M, X, 0.0)
    Mf = M.astype(np.float64)
    res = {"levels": levels, "path": "missing", "nllN": None, "nllD": None,
           "singularN": "none", "singularD": "none",
           "all_singularN": False, "all_singularD": False}
    nic = Mf.sum(axis=2)  # N x C

    # cN_raw: average over conditions with n_ij >= 2 of the pairwise cov.
    acc = np.zeros((N, N))
    cnt = np.zeros((N, N))
    for c in range(C):
        x, m = Xz[:, c, :], Mf[:, c, :]
        # the pair's shared trials: x_i restricted to trials where j present
        s2 = x @ x.T  # x is zero where missing: only shared trials count
        si = x @ m.T
        kk = m @ m.T
        ok = kk >= 2
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = (s2 - si * si.T / kk) / (kk - 1)
        acc[ok] += cov[ok]
        cnt[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        cN_raw = acc / cnt

    # condition means per unit over its own present trials
    defined = nic >= 1  # N x C
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(defined, Xz.sum(axis=2) / np.maximum(nic, 1), 0.0)
    Df = defined.astype(np.float64)
    s2 = means @ means.T
    si = means @ Df.T
    kk = Df @ Df.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cD_raw = (s2 - si * si.T / kk) / (kk - 1)

    # alpha[i,j] = mean over conditions where both defined of n_ij,c/(n_ic n_jc)
    a_acc = np.zeros((N, N))
    for c in range(C):
        m = Mf[:, c, :]
        nij = m @ m.T
        both = np.outer(defined[:, c], defined[:, c])
        with np.errstate(invalid="ignore", divide="ignore"):
            r = nij / np.outer(nic[:, c], nic[:, c])
        a_acc[both] += r[both]
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha_mat = a_acc / kk

    # shrink levels on the complete subsets
    sub = {}
    kN = kD = None
    try:
        Xc = X.copy()
        valid = M.all(axis=0)  # C x T: trials where every unit is present
        Xc[:, ~valid] = np.nan
        _, kN = noise_uneven(Xc, valid, levels, opt, sub)
    except GsnError:
        kN = None
    allc = defined.all(axis=0)
    if allc.sum() >= 5:
        _, _, kD = data_cov_select(means[:, allc].T, levels, opt, sub, "D")
    for tag, kx in (("N", kN), ("D", kD)):
        if kx is None:
            warnings.warn("missing units: no complete subset for level %s; using 1.0" % tag)
            res["shrinklevel" + tag] = 1.0
        else:
            res["shrinklevel" + tag] = float(levels[kx])
            res["nll" + tag] = sub["nll" + tag]
            res["singular" + tag] = sub["singular" + tag]
            res["all_singular" + tag] = sub["all_singular" + tag]

    n1 = opt.get("_n1_scale", False)
    cN = shrink(cN_raw, res["shrinklevelN"], n1)
    cD = shrink(cD_raw, res["shrinklevelD"], n1)
    mu = np.array([means[i, defined[i]].mean() for i in range(N)])
    neff = nic[defined].mean()
    res["ntrial_used"] = float(neff)
    res["alpha"] = alpha_mat
    return _finish(res, cN, cD, mu, None, neff, C, None, alpha_mat=alpha_mat)


def perform_gsn(data, opt=None):
    """Returns a dict with every output of section 1.3 (all `returns` items,
    regardless of opt['returns']) plus diagnostics: cD, nllN, nllD, levels,
    singularN/D ('none'|'rank'|'factor'), all_singularN/D, ntrial_used,
    path, wN, wD."""
    opt = dict(opt or {})
    X = np.asarray(data, dtype=np.float64)
    if X.ndim != 3:
        raise GsnError("data must be 3-D (units x conditions x trials)")
    if X.shape[2] < 2:
        raise GsnError("Number of trials must be at least 2.")
    levels = levels_of(opt)
    if not np.isnan(X).any():
        return run_even(X, levels, opt)
    mode = opt.get("uneven", "fast")
    if mode == "missing":
        return run_missing(X, levels, opt)
    return run_uneven(X, levels, opt)


def select(res, returns=None):
    """The arrays perform_gsn returns for opt['returns']."""
    if returns is None:
        returns = RETURNS_DEFAULT
    if isinstance(returns, str):
        returns = (returns,)
    keys = ["mnN", "mnS", "ncsnr"] + list(returns)
    return {k: res[k] for k in keys}
