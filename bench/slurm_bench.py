"""neuroqd's Slurm executor (issue 11) against its local executor, in one
run on this machine: a loopback Slurm cluster (tests/slurm/cluster.sh: one
slurmctld, two slurmd nodes, two fake GPUs each, all on the same cores).

1. Dispatch overhead per job: tiny gsn jobs (3 units x 10 conditions x 2
   trials; the worker computes for ~1 ms), one at a time, submit to DONE
   (the client's wall time, polling status every 20 ms): the median per job
   through Slurm and through the local executor, and their ratio.
2. Jobs per second: JOBS tiny jobs submitted at once, drained; through Slurm
   and locally (cpu_slots = the machine's cores), and the ratio.
3. DRAIN tiny jobs (default 500) queued at once through Slurm; the daemon's
   RSS (/proc/PID/status VmRSS) sampled every second until all are DONE:
   first (after the submissions), peak, last, the RSS when a fifth of the
   jobs had finished and the change from there to the end (flat: the queue
   shrinks, nothing grows with the jobs done), and the least-squares slope
   over the whole drain (kB per 100 jobs finished).

Needs root, Slurm and munge (deploy/install-deps.sh --ci), and a build:

    NEUROQ_BUILD=$PWD/build .venv/bin/python bench/slurm_bench.py [--one N] [--jobs N] [--drain N]

Prints one line per figure and writes the figures as JSON to
--json (default: none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "slurm"))
from slurmlib import (TERMINAL, Daemon, SlurmDaemon, _state_dir, make_data,  # noqa: E402
                      start_cluster, stop_cluster)

TINY = (3, 10, 2)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_at_a_time(d, n):
    """Median seconds from submit to DONE of a tiny job, n in a row."""
    times = []
    with d.client() as c:
        for i in range(n):
            data = make_data(*TINY, seed=i)
            t0 = time.perf_counter()
            j = c.submit("gsn", inputs={"data": data})
            while (st := c.status(j.id)["state"]) not in TERMINAL:
                time.sleep(0.02)
            times.append(time.perf_counter() - t0)
            assert st == "DONE", c.status(j.id)
    return statistics.median(times), times


def drain(d, n, sample_rss=False):
    """n tiny jobs submitted at once; (seconds to submit, seconds until all
    are DONE, rss samples [(t, kB, done)])."""
    samples = []
    with d.client() as c:
        t0 = time.perf_counter()
        ids = [c.submit("gsn", inputs={"data": make_data(*TINY, seed=i)}).id for i in range(n)]
        t_sub = time.perf_counter() - t0
        pending = set(ids)
        last_sample = 0.0
        while pending:
            now = time.perf_counter()
            if sample_rss and now - last_sample >= 1.0:
                samples.append((now - t0, rss_kb(d.proc.pid), n - len(pending)))
                last_sample = now
            for j in c.jobs(all_users=True, limit=0):
                if j["id"] in pending and j["state"] in TERMINAL:
                    assert j["state"] == "DONE", j
                    pending.discard(j["id"])
            if now - t0 > 3600:
                raise RuntimeError(f"{len(pending)} jobs not done after an hour")
            time.sleep(0.2)
        t_all = time.perf_counter() - t0
        if sample_rss:
            samples.append((t_all, rss_kb(d.proc.pid), n))
    return t_sub, t_all, samples


def slope_kb_per_100(samples):
    """Least squares of RSS (kB) against jobs finished, per 100 jobs."""
    xs = [s[2] for s in samples]
    ys = [s[1] for s in samples]
    if len(xs) < 2 or max(xs) == min(xs):
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    den = sum((x - mx) ** 2 for x in xs)
    return 100.0 * num / den


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--one", type=int, default=20, help="jobs one at a time (default 20)")
    ap.add_argument("--jobs", type=int, default=60, help="jobs at once (default 60)")
    ap.add_argument("--drain", type=int, default=500, help="jobs drained (default 500)")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="nq-slurmb-", dir="/tmp")
    out = {"conditions": {"cores": os.cpu_count(), "load_avg_start": os.getloadavg(),
                          "tiny_job": TINY, "utc": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                 time.gmtime())}}
    cluster = None
    made = []
    try:
        cluster = start_cluster(root)
        out["conditions"]["slurm_nodes"] = cluster.nodes
        loc = Daemon(_state_dir(), cpu_slots=os.cpu_count() or 1).start()
        made.append(loc)
        sl = SlurmDaemon(cluster).start()
        made.append(sl)
        out["conditions"]["slurm_poll_s"] = sl.conf["slurm_poll_s"]

        # 1. one at a time
        ml, _ = one_at_a_time(loc, a.one)
        ms, _ = one_at_a_time(sl, a.one)
        out["one_at_a_time"] = {"n": a.one, "local_s": ml, "slurm_s": ms, "ratio": ms / ml}
        print(f"dispatch, one job at a time (median submit->DONE of {a.one}): "
              f"local {ml * 1e3:.0f} ms, slurm {ms * 1e3:.0f} ms, ratio {ms / ml:.1f}")

        # 2. jobs per second
        _, tl, _ = drain(loc, a.jobs)
        _, ts, _ = drain(sl, a.jobs)
        out["throughput"] = {"n": a.jobs, "local_jobs_s": a.jobs / tl,
                             "slurm_jobs_s": a.jobs / ts, "ratio": tl / ts}
        print(f"throughput, {a.jobs} jobs at once: local {a.jobs / tl:.2f} jobs/s, "
              f"slurm {a.jobs / ts:.2f} jobs/s, slurm/local {tl / ts:.3f}")
        loc.stop()

        # 3. a long drain through Slurm, RSS sampled
        t_sub, t_all, samples = drain(sl, a.drain, sample_rss=True)
        first = samples[0][1]
        peak = max(s[1] for s in samples)
        last = samples[-1][1]
        slope = slope_kb_per_100(samples)
        fifth = next(s[1] for s in samples if s[2] >= a.drain // 5)
        out["drain"] = {"n": a.drain, "submit_s": t_sub, "drain_s": t_all,
                        "jobs_s": a.drain / t_all, "rss_first_kb": first,
                        "rss_peak_kb": peak, "rss_last_kb": last,
                        "rss_at_fifth_kb": fifth, "rss_slope_kb_per_100_jobs": slope,
                        "samples": samples,
                        "squeue_calls": len(sl.calls("squeue")),
                        "sbatch_calls": len(sl.calls("sbatch"))}
        print(f"drain of {a.drain} jobs through Slurm: submitted in {t_sub:.1f} s, all DONE "
              f"after {t_all:.1f} s ({a.drain / t_all:.2f} jobs/s); daemon RSS first "
              f"{first} kB, peak {peak} kB, last {last} kB; {fifth} kB at a fifth done, "
              f"{last - fifth:+d} kB from there to the end; slope {slope:+.1f} kB per 100 jobs; "
              f"{out['drain']['squeue_calls']} squeue and {out['drain']['sbatch_calls']} "
              f"sbatch calls in all")
        out["conditions"]["load_avg_end"] = os.getloadavg()
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=1))
    finally:
        for d in made:
            d.stop()
            shutil.rmtree(d.dir, ignore_errors=True)
            if isinstance(d, SlurmDaemon):
                shutil.rmtree(d.spool, ignore_errors=True)
        if cluster is not None:
            stop_cluster(root)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
