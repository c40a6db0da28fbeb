"""What one monitoring snapshot (daemon/metrics.c: /metrics + /api/queue)
costs as the job store grows: a store of N finished rows (copies of one real
gsn job, written with sqlite3 while the daemon is stopped), then
neuroq_metrics_build_seconds after a few scrapes. The reference in the same
run: the same daemon's snapshot with 1 row.

    NEUROQ_BUILD=$PWD/build .venv/bin/python bench/metrics_snapshot.py [N ...]
"""
import os
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import Daemon, _state_dir, discard, make_data, wait_all  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_metrics import free_port  # noqa: E402


def build_seconds(url, scrapes=5):
    best = []
    for _ in range(scrapes):
        time.sleep(1.1)  # older than the port's snapshot: a fresh build each time
        with urllib.request.urlopen(url + "/metrics", timeout=60) as r:
            text = r.read().decode()
        # the gauge reports the build before this one
        for f in text_string_to_metric_families(text):
            if f.name == "neuroq_metrics_build_seconds":
                best.append(f.samples[0].value)
    return min(best[1:])


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 100000]
    port = free_port()
    d = Daemon(_state_dir(), conf={"http_listen": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    try:
        d.start()
        c = d.client()
        wait_all(c, [c.submit("gsn", inputs={"data": make_data(3, 10, 2)}).id])
        c.close()
        ref = build_seconds(url)
        print(f"rows=1 build={ref * 1e3:.3f} ms")
        have = 1
        for n in sizes:
            d.stop()
            db = sqlite3.connect(d.dir / "neuroq.db")
            cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)") if r[1] != "id"]
            cl = ", ".join(cols)
            sel = ", ".join("''" if c == "idem" else c for c in cols)
            db.execute(f"WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k "
                       f"WHERE x < ?) INSERT INTO jobs ({cl}) SELECT {sel} FROM jobs, k "
                       f"WHERE jobs.id = 1", (n - have,))
            db.commit()
            db.close()
            have = n
            d.start()
            t = build_seconds(url)
            print(f"rows={n} build={t * 1e3:.3f} ms ratio_to_1_row={t / ref:.0f} "
                  f"per_row={t / n * 1e6:.2f} us")
    finally:
        discard(d)


if __name__ == "__main__":
    main()
