#!/usr/bin/env python3
"""Wall-clock benchmark of neuroq's gsn job against the Python reference.

Data kinds (--kinds):
  bench   the spec's make_synthetic (section 5.3): default_rng(0); U = randn(N,20)/sqrt(20);
          Z = randn(20,C); data = (U Z)[:,:,None] + randn(N,C,T). cS is nearly PD: the biconvex
          refinement does not iterate (numiters 0).
  active  rank-10 signal + rank-20 correlated noise (make_active): selects 0.98/0.98, cS is
          indefinite and the biconvex loop makes a second pass (numiters 1).
  uneven  the bench data with 15 % of the (condition, trial) cells NaN (whole trials missing,
          at least 2 left per condition): the uneven='fast' path.

Machine limit: each row also gives the time of one dsyevd (vectors) and one dsytrd of a random
symmetric N x N matrix, through the LAPACKE/OpenBLAS the worker links (ctypes), same thread count,
same run; stage times are printed in units of those, with the flops each stage needs (model in
bench/README.md) and their rate against dsytrd's (4/3 N^3 / t).

neuroq: `neuroq-worker run --type gsn` on a job dir, standalone (wall time includes
process start and .npy I/O; "compute" is out/result.json "time_s" when the worker
records it). Reference: GSN 1.2 `perform_gsn(backend='numpy')` from --gsn-repo /
$GSN_REPO, else the numpy oracle of tests/gsn (slow by design: say so in figures).

    OPENBLAS_NUM_THREADS=1 bench/gsn_bench.py --build BUILD --gsn-repo GSN  # cpu, 3 kinds, N = 200..4000
    bench/gsn_bench.py --device cuda --sizes 1000,5000,10000,20000 --conds 100 --trials 5
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def make_synthetic(n, c, t, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, 20)) / np.sqrt(20)
    z = rng.standard_normal((20, c))
    return (u @ z)[:, :, None] + rng.standard_normal((n, c, t))


def make_active(n, c, t, seed=0):
    """Rank-10 signal + rank-20 correlated noise: a biconvex-active dataset (issue 17: at
    C = 80, T = 4 it selects 0.98/0.98 and numiters 1)."""
    rng = np.random.default_rng(seed)
    us = rng.standard_normal((n, 10)) / np.sqrt(10)
    sig = us @ rng.standard_normal((10, c))
    un = rng.standard_normal((n, 20)) / np.sqrt(20)
    noise = np.einsum("nk,kct->nct", un, rng.standard_normal((20, c, t)))
    return sig[:, :, None] + noise


def make_uneven(n, c, t, seed=0, frac=0.15):
    """make_synthetic with whole trials NaN (frac of the cells, >= 2 valid per condition)."""
    x = make_synthetic(n, c, t, seed)
    rng = np.random.default_rng(seed + 1)
    for ci in range(c):
        for ti in rng.permutation(t)[: max(0, min(t - 2, rng.binomial(t, frac)))]:
            x[:, ci, ti] = np.nan
    return x


KINDS = {"bench": make_synthetic, "active": make_active, "uneven": make_uneven}


class Lapack:
    """dsyevd / dsytrd of the library the worker links, timed in this process."""

    def __init__(self, worker, threads):
        import ctypes
        import ctypes.util
        libs = {}
        try:
            out = subprocess.run(["ldd", worker], capture_output=True, text=True).stdout
            for line in out.splitlines():
                parts = line.split("=>")
                if len(parts) == 2 and parts[1].strip().startswith("/"):
                    libs[parts[0].strip()] = parts[1].split()[0]
        except OSError:
            pass
        self.ok = False
        try:
            self.lapacke = ctypes.CDLL(libs.get("liblapacke.so.3") or ctypes.util.find_library("lapacke"),
                                       mode=ctypes.RTLD_GLOBAL)
            blas = next((v for k, v in libs.items() if "openblas" in k), None)
            self.blas = ctypes.CDLL(blas or ctypes.util.find_library("openblas"), mode=ctypes.RTLD_GLOBAL)
        except (OSError, TypeError):
            return
        self.ct = ctypes
        if threads and hasattr(self.blas, "openblas_set_num_threads"):
            self.blas.openblas_set_num_threads(int(threads))
        self.ok = True

    def time(self, n, repeats):
        """(best dsyevd seconds, best dsytrd seconds) on one random symmetric matrix."""
        if not self.ok:
            return None, None
        ct = self.ct
        rng = np.random.default_rng(1)
        a0 = rng.standard_normal((n, n))
        a0 = np.asfortranarray(a0 + a0.T)
        dp = ct.POINTER(ct.c_double)
        best = [None, None]
        for _ in range(repeats):
            a = a0.copy(order="F")
            w = np.empty(n)
            t0 = time.perf_counter()
            r = self.lapacke.LAPACKE_dsyevd(102, ct.c_char(b"V"), ct.c_char(b"L"), n,
                                            a.ctypes.data_as(dp), n, w.ctypes.data_as(dp))
            t1 = time.perf_counter() - t0
            a = a0.copy(order="F")
            d, e, tau = np.empty(n), np.empty(n), np.empty(n)
            t0 = time.perf_counter()
            r |= self.lapacke.LAPACKE_dsytrd(102, ct.c_char(b"L"), n, a.ctypes.data_as(dp), n,
                                             d.ctypes.data_as(dp), e.ctypes.data_as(dp),
                                             tau.ctypes.data_as(dp))
            t2 = time.perf_counter() - t0
            if r != 0:
                return None, None
            best = [t1 if best[0] is None else min(best[0], t1), t2 if best[1] is None else min(best[1], t2)]
        return best


def stage_flops(n, c, t, numiters, kpos, alpha_n):
    """Flops each stage needs (leading terms; bench/README.md): noise, data, biconvex."""
    v = round(c / 5)
    n3 = float(n) ** 3

    def sel(r):  # spectral level choice: Gram of r samples when 2r <= N, else a reduction
        return 2.0 * n * r * r + 2.0 * r ** 3 if 2 * r <= n else 4.0 / 3.0 * n3
    # noise: the training Gram, then the full one as it plus the held-out samples' Gram
    noise = float(n) ** 2 * c * t + sel((c - v) * t)
    data = float(n) ** 2 * ((c - v) + c) + sel(c - v)
    passes = numiters + 1
    # per pass: the noise projection's Cholesky test (N^3/3) when the noise covariance is
    # not diagonal (alpha_n > 0; a diagonal one plus the signal step's correction is proved
    # PD by diagonal dominance in one N^2 pass, gsn_psd.c); the signal projection, when cS
    # is not PD (kpos < N): one reduction, the vectors of the smaller side (2 N^2 k back-
    # transformation + N^2 k rebuild)
    k = min(kpos, n - kpos)
    sig = 4.0 / 3.0 * n3 + 3.0 * float(n) ** 2 * k if kpos < n else 0.0
    chol = n3 / 3.0 if alpha_n > 0 else 0.0
    return noise, data, passes * (chol + sig)


def find_worker(args):
    if args.worker:
        return args.worker
    build = args.build or os.environ.get("NEUROQ_BUILD") or str(ROOT / "build")
    for rel in ("daemon/neuroq-worker", "neuroq-worker", "bin/neuroq-worker"):
        p = pathlib.Path(build) / rel
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    sys.exit("gsn_bench: no neuroq-worker under %s (use --build or --worker)" % build)


def load_reference(args):
    """(name, callable(data, returns) -> dict)."""
    repo = args.gsn_repo or os.environ.get("GSN_REPO")
    if repo and not args.oracle:
        sys.path.insert(0, repo)
        try:
            from gsn.perform_gsn import perform_gsn as up
        except ImportError as e:
            sys.exit("gsn_bench: cannot import gsn from %s: %s" % (repo, e))

        def ref(data, returns):
            return up(data, {"backend": "numpy", "wantverbose": 0, "returns": list(returns)})
        return "GSN 1.2 numpy (%s)" % repo, ref
    sys.path.insert(0, str(ROOT / "tests" / "gsn"))
    import gsn_oracle

    def ref(data, returns):
        return gsn_oracle.perform_gsn(data)
    return "tests/gsn oracle (per-level Cholesky loop, not a speed reference)", ref


def run_worker(worker, data, params, device, keep):
    import msgpack

    d = pathlib.Path(tempfile.mkdtemp(prefix="gsnbench-"))
    try:
        (d / "in").mkdir()
        (d / "out").mkdir()
        (d / "params.mp").write_bytes(msgpack.packb(params, use_bin_type=True))
        np.save(d / "in" / "data.npy", data)
        t0 = time.perf_counter()
        proc = subprocess.run([worker, "run", "--type", "gsn", "--dir", str(d), "--device", device],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err = (d / "error").read_text() if (d / "error").exists() else proc.stderr[-1000:]
            raise RuntimeError("neuroq-worker exit %d: %s" % (proc.returncode, err.strip()))
        res = json.loads((d / "out" / "result.json").read_text())
        out = {p.stem: np.load(p) for p in (d / "out").glob("*.npy")}
        return wall, res, out
    finally:
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,500,1000,2000,4000", help="comma-separated N")
    ap.add_argument("--kinds", default="bench,active,uneven", help="data kinds: " + ",".join(KINDS))
    ap.add_argument("--conds", type=int, default=80)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--device", default="cpu", help="cpu, cuda (= cuda:0) or cuda:N")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    ap.add_argument("--returns", default="cSb,cNb", help="returns for both sides (spec 4.3 uses cSb,cNb)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra gsn param for neuroq, e.g. nll=cholesky")
    ap.add_argument("--build", help="neuroq build dir (default $NEUROQ_BUILD, then <repo>/build)")
    ap.add_argument("--worker", help="path of neuroq-worker")
    ap.add_argument("--gsn-repo", help="checkout of cvnlab/GSN 1.2 (default $GSN_REPO)")
    ap.add_argument("--oracle", action="store_true", help="use the tests/gsn oracle as reference")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--ref-max-n", type=int, default=5000, help="skip the reference above this N")
    ap.add_argument("--ref-budget", type=float, default=120.0,
                    help="skip the reference where its N^3 extrapolation from the previous N of the "
                         "same kind exceeds this many seconds per run")
    ap.add_argument("--no-limit", action="store_true", help="skip the dsyevd/dsytrd timings")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    ap.add_argument("--keep", action="store_true", help="keep the job dirs")
    args = ap.parse_args()

    device = "cuda:0" if args.device == "cuda" else args.device
    returns = [r for r in args.returns.split(",") if r]
    params = {"returns": returns}
    for kv in args.param:
        k, v = kv.split("=", 1)
        params[k] = v
    worker = find_worker(args)
    refname, ref = (None, None) if args.no_reference else load_reference(args)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in KINDS:
            sys.exit("gsn_bench: unknown kind %s" % k)
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or str(os.cpu_count())
    lap = None if args.no_limit or device != "cpu" else Lapack(worker, threads)
    if ref is not None:  # first call pays imports (scipy, lazy modules)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref(make_synthetic(8, 20, 3), returns)

    head = {"device": device, "conds": args.conds, "trials": args.trials, "returns": returns,
            "params": params, "worker": worker, "reference": refname, "blas_threads": threads}
    if args.json:
        print(json.dumps({"config": head}), flush=True)
    else:
        print("# neuroq gsn vs %s" % (refname or "no reference"))
        print("# device %s, C = %d, T = %d, returns %s, params %s, best of %d, BLAS threads %s" % (
            device, args.conds, args.trials, ",".join(returns), params, args.repeats, threads))
        print("# stages noise/data/biconvex: seconds, then in units of one dsyevd(N); Gf/s: the "
              "stage's needed flops / its time, against dsytrd's 4/3 N^3 / t")
        print("%-6s %5s %8s %8s %8s %6s %18s %18s %8s %15s %15s %7s %7s %14s %12s" % (
            "kind", "N", "neuroq_s", "compute", "ref_s", "ratio", "noise/data/bic s",
            "stages/syevd", "job/evd", "neuroq aN/aD/it", "ref aN/aD/it", "max_rel",
            "syevd_s", "sytrd_s(Gf/s)", "bic Gf/s"))
    for kind in kinds:
        gen = KINDS[kind]
        last_ref = None
        for n in sizes:
            data = gen(n, args.conds, args.trials)
            best = None
            for _ in range(args.repeats):
                wall, res, out = run_worker(worker, data, params, device, args.keep)
                if best is None or wall < best[0]:
                    best = (wall, res, out)
            wall, res, out = best
            st = [res.get("time_noise_s"), res.get("time_data_s"), res.get("time_biconvex_s")]
            row = {"kind": kind, "N": n, "neuroq_s": wall, "compute_s": res.get("time_s"),
                   "stages_s": st,
                   "neuroq_levels": [res.get("shrinklevelN"), res.get("shrinklevelD"), res.get("numiters")]}
            if lap is not None:
                row["syevd_s"], row["sytrd_s"] = lap.time(n, max(1, args.repeats))
            if "cSb" in out:
                ev = np.linalg.eigvalsh(out["cSb"])
                kpos = int((ev > 1e-9 * max(ev.max(), 1e-300)).sum())
                row["kpos_cSb"] = kpos
                row["flops"] = stage_flops(n, args.conds, args.trials, int(res.get("numiters") or 0), kpos,
                                          float(res.get("shrinklevelN") or 0))
            want_ref = ref is not None and n <= args.ref_max_n
            if want_ref and last_ref is not None and \
                    last_ref[1] * (n / last_ref[0]) ** 3 > args.ref_budget:
                want_ref = False
                row["ref_skipped"] = "budget"
            if want_ref:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rt = None
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        r = ref(data, returns)
                        dt = time.perf_counter() - t0
                        rt = dt if rt is None else min(rt, dt)
                last_ref = (n, rt)
                row["ref_s"] = rt
                row["ratio"] = rt / wall
                row["ref_levels"] = [float(r["shrinklevelN"]), float(r["shrinklevelD"]), int(r["numiters"])]
                row["max_rel"] = max(float(np.nanmax(np.abs(out[k] - r[k])) / np.nanmax(np.abs(r[k])))
                                     for k in returns if k in out)
            if args.json:
                print(json.dumps(row), flush=True)
                continue

            def f(x, fmt):
                return fmt % x if x is not None else "-"

            def lv(v):
                return "%.2f/%.2f/%d" % tuple(v) if v and None not in v else "-"
            evd, trd = row.get("syevd_s"), row.get("sytrd_s")
            sts = "/".join(f(x, "%.3f") for x in st)
            rel = "/".join(f(x / evd if x is not None and evd else None, "%.2f") for x in st)
            gf_trd = 4.0 / 3.0 * n ** 3 / trd / 1e9 if trd else None
            gf_bic = row["flops"][2] / st[2] / 1e9 if "flops" in row and st[2] else None
            print("%-6s %5d %8s %8s %8s %6s %18s %18s %8s %15s %15s %7s %7s %14s %12s" % (
                kind, n, f(wall, "%.3f"), f(row["compute_s"], "%.3f"), f(row.get("ref_s"), "%.3f"),
                f(row.get("ratio"), "%.1fx"), sts, rel,
                f(row["compute_s"] / evd if evd and row["compute_s"] else None, "%.2f"),
                lv(row["neuroq_levels"]), lv(row.get("ref_levels")), f(row.get("max_rel"), "%.1e"),
                f(evd, "%.3f"), (f(trd, "%.3f") + "(" + f(gf_trd, "%.1f") + ")") if trd else "-",
                f(gf_bic, "%.1f")), flush=True)


if __name__ == "__main__":
    main()
