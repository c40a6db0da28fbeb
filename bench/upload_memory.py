"""The daemon's peak memory (VmHWM of /proc/PID/status) while K clients, each
its own process and connection, submit a gsn job of S MiB at the same moment
(numpy float64 data, 50 units x S*MiB/1200 conditions x 3 trials), with the
Python client as it is (it reserves room first and retries EBUSY, up to its
busy_timeout); the script reports the peak, its increase over the idle
daemon, how each submit ended (EBUSY refusals retried), and checks that every
accepted job runs to DONE (workers are a stand-in that only writes empty
results: the daemon's memory is measured, not gsn's).

    NEUROQ_BUILD=$PWD/build .venv/bin/python bench/upload_memory.py \
        [--clients K] [--mib S] [--max-upload BYTES] [--rounds R]

--max-upload sets max_upload_bytes in the daemon's config (omitted: the
daemon's default); R rounds submit K x R jobs in all, a round starting when
the previous one is acknowledged.
"""
import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import WORKER, Daemon, _state_dir, discard, wait_all  # noqa: E402

import neuroq  # noqa: E402


def vm(pid, key):
    """VmHWM / VmRSS of a process in bytes."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def stand_in_worker(d):
    """A worker that checks nothing and writes one tiny output: `run` ends at
    once, `check`/`probe` go to the real worker. Keeps the machine's cores
    for the uploads."""
    p = d.dir / "fake-worker.sh"
    p.write_text(f"#!/bin/sh\n[ \"$1\" = run ] || exec {WORKER} \"$@\"\n"
                 "while [ $# -gt 0 ]; do [ \"$1\" = --dir ] && cd \"$2\"; shift; done\n"
                 "mkdir -p out && printf '{}' > out/result.json && exit 0\n")
    p.chmod(0o755)
    return p


def submit_one(url, mib, seed, out):
    """A client process: make the data, submit (retrying EBUSY), report."""
    c_ = max(1, int(mib * (1 << 20) / (8 * 50 * 3)))
    x = np.random.default_rng(seed).standard_normal((50, c_, 3))
    t0 = time.monotonic()
    try:
        with neuroq.Client(url, timeout=120) as c:
            job = c.submit("gsn", inputs={"data": x}, device="cpu")
            out.put(("ok", job.id, getattr(c, "busy_refusals", 0), time.monotonic() - t0))
    except neuroq.NeuroqError as e:
        out.put((e.name, str(e), 0, time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--mib", type=float, default=150)
    ap.add_argument("--max-upload", default=None)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    conf = {"max_upload_bytes": a.max_upload} if a.max_upload else {}
    d = Daemon(_state_dir(), conf=conf)
    try:
        d.conf["worker_path"] = str(stand_in_worker(d))
        d.start()
        pid = d.proc.pid
        idle = vm(pid, "VmRSS")
        ctx = mp.get_context("spawn")  # pynng does not survive a fork
        q = ctx.Queue()
        ends = []
        t0 = time.monotonic()
        for r in range(a.rounds):
            ps = [ctx.Process(target=submit_one, args=(d.url, a.mib, 100 * r + i, q))
                  for i in range(a.clients)]
            for p in ps:
                p.start()
            ends += [q.get(timeout=600) for _ in ps]
            for p in ps:
                p.join()
        wall = time.monotonic() - t0
        peak = vm(pid, "VmHWM")
        ids = [e[1] for e in ends if e[0] == "ok"]
        with d.client() as c:
            final = wait_all(c, ids, timeout=300)
        states = [final[i]["state"] for i in ids]
        mib = 1 << 20
        print(f"clients={a.clients} mib={a.mib:g} rounds={a.rounds} "
              f"max_upload_bytes={a.max_upload or 'default'}")
        print(f"daemon idle rss {idle / mib:.0f} MiB, peak (VmHWM) {peak / mib:.0f} MiB, "
              f"increase {(peak - idle) / mib:.0f} MiB = "
              f"{(peak - idle) / (a.mib * mib):.2f} x one upload; {wall:.1f} s")
        print(f"submits: {len(ids)} accepted, {sum(e[2] for e in ends if e[0] == 'ok')} EBUSY "
              f"refusals retried, failed: {[e[:2] for e in ends if e[0] != 'ok']}")
        print(f"accepted jobs DONE: {states.count('DONE')}/{len(ids)}")
    finally:
        discard(d)


if __name__ == "__main__":
    main()
