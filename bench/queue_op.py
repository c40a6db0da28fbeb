"""What one `queue` request (daemon/ops_info.c, what `neuroq top` asks every
second) costs as the store and the queue grow: N finished rows and Q queued
rows (copies of one real gsn job, written with sqlite3 while the daemon is
stopped; the daemon then runs a stand-in worker that only sleeps, so the
first queued copy holds the one cpu slot and the rest wait), then the median
round trip of the op over the ipc socket, for root (an administrator: the
first 200 queued listed) and, the reference in the same run, `status` of one
job (one indexed read; the floor of any request).

    NEUROQ_BUILD=$PWD/build .venv/bin/python bench/queue_op.py [N:Q ...]
"""
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import msgpack
import pynng

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import WORKER, Daemon, _state_dir, discard, make_data, wait_all  # noqa: E402


def round_trip_ms(url, op, n=50, **fields):
    t = []
    with pynng.Req0(recv_timeout=60000) as s:
        s.dial(url, block=True)
        body = msgpack.packb({"v": 1, "op": op, **fields})
        for _ in range(n):
            t0 = time.perf_counter()
            s.send(body)
            rep = msgpack.unpackb(s.recv(), raw=False)
            t.append(time.perf_counter() - t0)
            assert rep["ok"], rep
    return statistics.median(t) * 1e3, rep


def main():
    sizes = [tuple(map(int, a.split(":"))) for a in sys.argv[1:]] or \
        [(1000, 100), (10000, 1000), (100000, 10000)]
    d = Daemon(_state_dir())
    try:
        d.start()
        c = d.client()
        wait_all(c, [c.submit("gsn", inputs={"data": make_data(3, 10, 2)}).id])
        c.close()
        sleeper = d.dir / "sleeper.sh"
        sleeper.write_text(f"#!/bin/sh\n[ \"$1\" = run ] || exec {WORKER} \"$@\"\n"
                           "trap 'kill $!; exit 1' TERM\nsleep 3600 &\nwait\n")
        sleeper.chmod(0o755)
        have_n = have_q = 0
        for n, q in sizes:
            d.stop()
            db = sqlite3.connect(d.dir / "neuroq.db")
            cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)") if r[1] != "id"]
            cl = ", ".join(cols)
            done = ", ".join("''" if c == "idem" else c for c in cols)
            queued = ", ".join({"idem": "''", "state": "0", "started_us": "0",
                                "finished_us": "0", "device": "''",
                                "attempts": "0"}.get(c, c) for c in cols)
            for sel, k in ((done, n - have_n), (queued, q - have_q)):
                db.execute(f"WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k "
                           f"WHERE x < ?) INSERT INTO jobs ({cl}) SELECT {sel} FROM jobs, k "
                           f"WHERE jobs.id = 1", (k,))
            db.commit()
            db.close()
            have_n, have_q = n, q
            d.conf["worker_path"] = sleeper
            d.start()
            ref, _ = round_trip_ms(d.url, "status", id=1)
            ms, rep = round_trip_ms(d.url, "queue")
            assert rep["queue_total"] >= 0.99 * q - 3, rep["queue_total"]  # one runs per start
            print(f"rows={n + q + 1} queued={rep['queue_total']} listed={len(rep['queue'])} "
                  f"queue={ms:.2f} ms status={ref:.2f} ms ratio={ms / ref:.1f}")
    finally:
        discard(d)


if __name__ == "__main__":
    main()
