#!/usr/bin/env python3
"""Wall-clock benchmark of neuroq's gsn job against the Python reference.

Data: the spec's make_synthetic (section 5.3): default_rng(0); U = randn(N,20)/sqrt(20);
Z = randn(20,C); data = (U Z)[:,:,None] + randn(N,C,T).

neuroq: `neuroq-worker run --type gsn` on a job dir, standalone (wall time includes
process start and .npy I/O; "compute" is out/result.json "time_s" when the worker
records it). Reference: GSN 1.2 `perform_gsn(backend='numpy')` from --gsn-repo /
$GSN_REPO, else the numpy oracle of tests/gsn (slow by design: say so in figures).

    bench/gsn_bench.py --build /path/to/build                       # cpu, N = 200..2000
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
    ap.add_argument("--sizes", default="200,500,1000,2000", help="comma-separated N")
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
    if ref is not None:  # first call pays imports (scipy, lazy modules)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref(make_synthetic(8, 20, 3), returns)

    head = {"device": device, "conds": args.conds, "trials": args.trials, "returns": returns,
            "params": params, "worker": worker, "reference": refname}
    if args.json:
        print(json.dumps({"config": head}), flush=True)
    else:
        print("# neuroq gsn vs %s" % (refname or "no reference"))
        print("# device %s, C = %d, T = %d, returns %s, params %s, best of %d" % (
            device, args.conds, args.trials, ",".join(returns), params, args.repeats))
        print("%7s %10s %10s %10s %8s %16s %16s %9s" % (
            "N", "neuroq_s", "compute_s", "ref_s", "ratio", "neuroq αN/αD/it", "ref αN/αD/it",
            "max_rel"))
    for n in sizes:
        data = make_synthetic(n, args.conds, args.trials)
        best = None
        for _ in range(args.repeats):
            wall, res, out = run_worker(worker, data, params, device, args.keep)
            if best is None or wall < best[0]:
                best = (wall, res, out)
        wall, res, out = best
        row = {"N": n, "neuroq_s": wall, "compute_s": res.get("time_s"),
               "neuroq_levels": [res.get("shrinklevelN"), res.get("shrinklevelD"), res.get("numiters")]}
        if ref is not None and n <= args.ref_max_n:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rt = None
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    r = ref(data, returns)
                    dt = time.perf_counter() - t0
                    rt = dt if rt is None else min(rt, dt)
            row["ref_s"] = rt
            row["ratio"] = rt / wall
            row["ref_levels"] = [float(r["shrinklevelN"]), float(r["shrinklevelD"]), int(r["numiters"])]
            row["max_rel"] = max(float(np.abs(out[k] - r[k]).max() / np.abs(r[k]).max())
                                 for k in returns if k in out)
        if args.json:
            print(json.dumps(row), flush=True)
            continue

        def f(x, fmt):
            return fmt % x if x is not None else "-"

        def lv(v):
            return "%.2f/%.2f/%d" % tuple(v) if v and None not in v else "-"
        print("%7d %10s %10s %10s %8s %16s %16s %9s" % (
            n, f(wall, "%.3f"), f(row["compute_s"], "%.3f"), f(row.get("ref_s"), "%.3f"),
            f(row.get("ratio"), "%.1fx"), lv(row["neuroq_levels"]), lv(row.get("ref_levels")),
            f(row.get("max_rel"), "%.1e")), flush=True)


if __name__ == "__main__":
    main()
