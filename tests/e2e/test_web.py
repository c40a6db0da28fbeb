"""The queue page (http_listen's /) in a real headless Chromium (Debian's
`chromium`): after its JavaScript has polled /api/queue, the DOM shows the
running job with its progress and the queued job with why it waits; later
the same page shows them finished. A screenshot of each state is kept in
<build>/test-artifacts/. /api/queue itself carries no owner, parameters or
paths.
"""

import html.parser
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BUILD, LONG_JOB, Frozen, make_data, wait_all, wait_state
from test_metrics import http_daemon

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")

ARTIFACTS = Path(BUILD) / "test-artifacts"
TINY = (3, 10, 2)


def chromium(url, *args, timeout=90):
    """Run headless Chromium on url; returns its stdout."""
    with tempfile.TemporaryDirectory(prefix="nq-chromium-") as prof:
        r = subprocess.run(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={prof}", "--window-size=1200,860",
             "--virtual-time-budget=3000", *args, url],
            capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class Tables(html.parser.HTMLParser):
    """The page's tables: {table id: [(data-job-id, [cell texts])]}, and the
    status line's text."""

    def __init__(self):
        super().__init__()
        self.tables, self.status = {}, ""
        self._table = self._row = self._cell = None
        self._in_status = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = (a.get("data-job-id"), [])
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif a.get("id") == "status":
            self._in_status = True

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row[1]:
                self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "span":
            self._in_status = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_status:
            self.status += data


def page(d, shot=None):
    dom = chromium(d.http + "/", "--dump-dom")
    if shot is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chromium(d.http + "/", f"--screenshot={ARTIFACTS / shot}")
        assert (ARTIFACTS / shot).stat().st_size > 10000
    t = Tables()
    t.feed(dom)
    return t


def rows(t, table):
    return {jid: cells for jid, cells in t.tables.get(table, []) if jid is not None}


def api(d):
    with urllib.request.urlopen(d.http + "/api/queue", timeout=10) as r:
        assert r.headers["Content-Type"] == "application/json"
        return json.loads(r.read())


# what /api/queue may say about jobs (the port has no trusted identity)
JOB_KEYS = {"id", "type", "state", "device", "progress", "elapsed_s", "eta_s",
            "reason", "finished", "run_s"}


def test_page_shows_running_and_queued_jobs(daemon_factory):
    d = http_daemon(daemon_factory)
    c = d.client()
    long_id = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)}).id
    # let it report some progress, then hold it there
    deadline = time.monotonic() + 120
    while (j := c.status(long_id))["progress"] < 0.01:
        assert j["state"] in ("QUEUED", "RUNNING"), j
        assert time.monotonic() < deadline, "no progress from the long job"
        time.sleep(0.05)
    frozen = Frozen(d, c, long_id)
    try:
        queued_id = c.submit("gsn", inputs={"data": make_data(*TINY)}).id
        progress = c.status(long_id)["progress"]
        time.sleep(1.1)  # the port's snapshot is at most a second old

        t = page(d, shot="queue-page-running.png")
        assert t.status.startswith("live"), t.status
        run = rows(t, "running")
        assert list(run) == [str(long_id)]
        job, typ, dev, pct = run[str(long_id)][:4]
        assert (job, typ, dev) == (str(long_id), "gsn", "cpu")
        assert pct.endswith("%") and abs(float(pct.rstrip(" %")) - 100 * progress) <= 1
        q = rows(t, "queue")
        assert list(q) == [str(queued_id)]
        assert q[str(queued_id)] == ["1", str(queued_id), "gsn", "cpu", "no free slot on cpu"]

        # the data behind it: aggregate only, no owner, params or paths
        a = api(d)
        assert [j["id"] for j in a["running"]] == [long_id]
        assert a["running"][0]["eta_s"] is None or a["running"][0]["eta_s"] > 0
        assert [j["id"] for j in a["queue"]] == [queued_id]
        for j in a["running"] + a["queue"] + a["recent"]:
            assert set(j) <= JOB_KEYS, set(j) - JOB_KEYS
        text = json.dumps(a)
        for secret in (str(d.dir), "owner", "uid", "params"):
            assert secret not in text
        cpu = [v for v in a["devices"] if v["name"] == "cpu"][0]
        assert cpu["running"] == 1 and cpu["granted"] > 0
        # canceled while held: the worker acts on it at its next check
        # (the job takes about a second, so after a thaw it could end first)
        c.cancel(long_id)
    finally:
        frozen.thaw()

    # the page follows: the long job canceled, the queued one done
    final = wait_all(c, [long_id, queued_id])
    assert final[queued_id]["state"] == "DONE"
    time.sleep(1.1)
    t = page(d, shot="queue-page-finished.png")
    assert rows(t, "running") == {} and rows(t, "queue") == {}
    rec = rows(t, "recent")
    assert rec[str(queued_id)][2] == "done"
    assert rec[str(long_id)][2] == "canceled"
    c.close()


def test_page_assets_and_headers(daemon_factory):
    d = http_daemon(daemon_factory)
    with urllib.request.urlopen(d.http + "/", timeout=10) as r:
        body = r.read().decode()
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    # everything the page loads comes from the daemon itself
    assert "http" not in body.replace('href="/', "").split("<footer")[0]
    for path, ctype in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        with urllib.request.urlopen(d.http + path, timeout=10) as r:
            assert r.headers["Content-Type"].startswith(ctype)
            src = (Path(__file__).parents[2] / "daemon" / "web" / path.lstrip("/")).read_bytes()
            assert r.read() == src
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(d.http + "/etc/passwd", timeout=10)
    assert e.value.code == 404
