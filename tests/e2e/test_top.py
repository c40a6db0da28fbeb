"""`neuroq top` and the `queue` op behind it (proto/PROTOCOL.md §5).

The op's values after real jobs (a running job's progress, ETA and memory
grant; the queue in start order with each job's reason; the finished jobs),
its privacy as other Unix users (the pattern of test_privacy.py), and the
interactive screen in a real terminal: tmux panes of a fixed size, read back
with capture-pane, quit with `q` and with Ctrl-C, the terminal restored.
"""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import CLI, LONG_JOB, Frozen, make_data, wait_all
from test_privacy import ALICE, BOB, CAROL, lab, submit_as, users  # noqa: F401

TINY = (3, 10, 2)


def top_json(d, user=None):
    r = d.cli("--json", "top", user=user, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def hold_running(d, c, seed=1):
    """A long job with some progress, its worker stopped there."""
    jid = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=seed)}).id
    deadline = time.monotonic() + 120
    while (j := c.status(jid))["progress"] < 0.01:
        assert j["state"] in ("QUEUED", "RUNNING"), j
        assert time.monotonic() < deadline, "no progress from the long job"
        time.sleep(0.05)
    return jid, Frozen(d, c, jid)


def test_queue_op_after_real_jobs(daemon):
    d = daemon
    c = d.client()
    long_id, frozen = hold_running(d, c)
    try:
        q1 = c.submit("gsn", inputs={"data": make_data(*TINY, seed=2)}).id
        q2 = c.submit("gsn", inputs={"data": make_data(*TINY, seed=3)}, priority=5).id
        st = c.status(long_id)
        rep = top_json(d)
        assert rep["ok"] is True and rep["admin"] is True  # root: an administrator
        assert "others" not in rep
        # the running job: the store's progress (frozen: it cannot move), an ETA
        # from it, its owner
        [run] = rep["running"]
        assert run["id"] == long_id and run["state"] == "RUNNING"
        assert run["owner"] == os.getuid() and run["device"] == "cpu"
        assert run["progress"] == pytest.approx(st["progress"])
        assert run["elapsed_s"] > 0
        assert run["eta_s"] == pytest.approx(
            run["elapsed_s"] * (1 - run["progress"]) / run["progress"], rel=0.2)
        # the queue in start order: priority 5 first, then FIFO; why they wait
        assert [j["id"] for j in rep["queue"]] == [q2, q1]
        assert [j["position"] for j in rep["queue"]] == [1, 2]
        assert {j["reason"] for j in rep["queue"]} == {"no free slot on cpu"}
        assert rep["queue_total"] == 2
        # the ledger: the running job's grant on the cpu (host + "device")
        [cpu] = rep["devices"]
        assert cpu["name"] == "cpu" and cpu["running_count"] == 1 and cpu["slots"] == 1
        assert cpu["mem_reserved"] == st["est_host_bytes"] + st["est_device_bytes"]
        assert 0 < cpu["mem_reserved"] < cpu["capacity"] <= cpu["mem_total"]

        # the text frame shows the same
        r = d.cli("top", "--once")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        i_run = lines.index(next(x for x in lines if x.startswith("RUNNING (1)")))
        assert lines[i_run + 2].split()[:4] == [str(long_id), "gsn", str(os.getuid()), "cpu"]
        pct = f"{100 * st['progress']:.0f}%"
        assert pct in lines[i_run + 2].split(), lines[i_run + 2]
        qrows = [x.split() for x in lines if x.strip().startswith(("1 ", "2 "))
                 and "no free slot on cpu" in x]
        assert [(int(x[0]), int(x[1])) for x in qrows] == [(1, q2), (2, q1)], r.stdout
    finally:
        frozen.thaw()
    c.cancel(long_id)
    final = wait_all(c, [long_id, q1, q2])
    rep = top_json(d)
    assert rep["running"] == [] and rep["queue"] == [] and rep["queue_total"] == 0
    assert cpu_idle(rep)
    recent = {j["id"]: j for j in rep["recent"]}
    assert recent[long_id]["state"] == "CANCELED" and recent[long_id]["error_code"] == 23
    assert recent[q1]["state"] == recent[q2]["state"] == "DONE"
    # latest finished first
    fin = [j["finished"] for j in rep["recent"]]
    assert fin == sorted(fin, reverse=True)
    assert recent[q1]["finished"] == pytest.approx(final[q1]["finished"])
    c.close()


def cpu_idle(rep):
    return all(v["mem_reserved"] == 0 and v["running_count"] == 0 for v in rep["devices"])


def test_once_fits_the_width(daemon):
    d = daemon
    with d.client() as c:
        jid = c.submit("gsn", inputs={"data": make_data(*TINY)}).id
        wait_all(c, [jid])
    for cols in (40, 60, 200):
        r = subprocess.run([str(CLI), "--url", d.url, "top", "--once"], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "COLUMNS": str(cols)})
        assert r.returncode == 0, r.stderr
        assert max(len(x) for x in r.stdout.splitlines()) <= cols
        assert "\033" not in r.stdout
        assert any(x.split()[:1] == [str(jid)] and "DONE" in x for x in r.stdout.splitlines())


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                    reason="needs root: creates Unix users and runs clients as them")
def test_queue_op_privacy(lab, users):  # noqa: F811
    d = lab
    ua, ub = users[ALICE].pw_uid, users[BOB].pw_uid
    with d.client() as c:
        blocker, frozen = hold_running(d, c, seed=5)
        try:
            a = [submit_as(d, ALICE, seed=6 + i) for i in range(2)]
            b = submit_as(d, BOB, seed=9)
            # bob: his own queued job in full, with its place in the whole
            # queue; everyone else's only as counts
            rep = top_json(d, user=BOB)
            assert rep["admin"] is False
            assert rep["running"] == []
            [qb] = rep["queue"]
            assert qb["id"] == b and qb["owner"] == ub
            assert qb["position"] in (1, 2, 3) and qb["reason"] == "no free slot on cpu"
            assert rep["queue_total"] == 3
            assert rep["others"] == {"queued": 2, "running": 1}
            [cpu] = rep["devices"]
            assert cpu["running_count"] == 1 and "running" not in cpu
            text = json.dumps(rep)
            for jid in (blocker, *a):
                assert f'"id": {jid},' not in text
            assert f'"owner": {ua}' not in text and '"owner": 0' not in text
            r = d.cli("top", "--once", user=BOB)
            assert r.returncode == 0, r.stderr
            assert "other users' jobs: 2 queued, 1 running" in r.stdout
            # carol (admin group): every job, with owners, no counts
            rep = top_json(d, user=CAROL)
            assert rep["admin"] is True and "others" not in rep
            assert [(j["id"], j["owner"]) for j in rep["running"]] == [(blocker, 0)]
            assert sorted((j["id"], j["owner"]) for j in rep["queue"]) == \
                sorted([(a[0], ua), (a[1], ua), (b, ub)])
            assert sorted(j["position"] for j in rep["queue"]) == [1, 2, 3]
            # bob's place is his job's place in the whole queue
            assert {j["id"]: j["position"] for j in rep["queue"]}[b] == qb["position"]
            assert [j["position"] for j in rep["queue"]] == [1, 2, 3]  # in start order
        finally:
            c.cancel(blocker)
            frozen.thaw()
        wait_all(c, [blocker, *a, b])
    rep = top_json(d, user=ALICE)
    assert sorted(j["id"] for j in rep["recent"]) == sorted(a)
    assert {j["owner"] for j in rep["recent"]} == {ua}


# ---- the screen, in tmux

TMUX = shutil.which("tmux")


class Pane:
    """One tmux server (its own socket) with one window of a fixed size
    running cmd; after cmd ends the pane prints its exit status and the
    terminal's settings, then waits. shell=True runs an interactive bash
    instead (job control: Ctrl-Z, fg), to be driven with keys()."""

    def __init__(self, cmd, width, height, shell=False):
        self.sock = f"nq-top-{uuid.uuid4().hex[:8]}"
        shell = "env PS1='$ ' bash --norc --noprofile -i" if shell else \
            (f"{cmd}; echo EXITED rc=$?; stty -a | tr '\\n' ' '; echo STTY-END; "
             "sleep 120")
        subprocess.run([TMUX, "-L", self.sock, "-f", "/dev/null", "new-session", "-d",
                        "-x", str(width), "-y", str(height), shell], check=True)

    def screen(self):
        r = subprocess.run([TMUX, "-L", self.sock, "capture-pane", "-p", "-J"],
                           capture_output=True, text=True, check=True)
        return r.stdout

    def wait_for(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            assert time.monotonic() < deadline, f"screen never matched:\n{s}"
            time.sleep(0.1)

    def keys(self, *k):
        subprocess.run([TMUX, "-L", self.sock, "send-keys", *k], check=True)

    def close(self):
        subprocess.run([TMUX, "-L", self.sock, "kill-server"], capture_output=True)


@pytest.mark.skipif(TMUX is None, reason="needs tmux (apt-get install tmux)")
@pytest.mark.parametrize("quit_key", ["q", "C-c"])
def test_top_in_a_terminal(daemon, quit_key):
    d = daemon
    c = d.client()
    long_id, frozen = hold_running(d, c, seed=11)
    pane = None
    try:
        queued = c.submit("gsn", inputs={"data": make_data(*TINY, seed=12)}).id
        pane = Pane(f"{CLI} --url {d.url} top", 90, 24)
        s = pane.wait_for(lambda s: "QUEUE (1 waiting)" in s and "RUNNING (1)" in s)
        rows = s.splitlines()
        assert len(rows) <= 24 and max(len(x) for x in rows) <= 90
        assert rows[0].startswith("neuroq top") and rows[0].rstrip().endswith("(q quits)")
        run = next(x for x in rows if x.split()[:1] == [str(long_id)])
        assert run.split()[1:4] == ["gsn", str(os.getuid()), "cpu"]
        q = next(x for x in rows if x.split()[1:2] == [str(queued)])
        assert q.split()[0] == "1" and q.rstrip().endswith("no free slot on cpu")
        assert "cpu      cpu" in s  # the device line
        # it redraws: the clock on the first line moves on
        first = rows[0]
        pane.wait_for(lambda s: s.splitlines()[0] != first, timeout=10)
        pane.keys(quit_key)
        s = pane.wait_for(lambda s: "STTY-END" in s)
        assert "EXITED rc=0" in s
        # the terminal is back: the main screen (top's frame gone with the
        # alternate screen), canonical mode and echo on
        assert "RUNNING (1)" not in s
        stty = s[s.index("EXITED"):]
        assert " icanon " in stty and " echo " in stty, stty
    finally:
        if pane is not None:
            pane.close()
        frozen.thaw()
        c.cancel(long_id)
        c.close()


@pytest.mark.skipif(TMUX is None or shutil.which("bash") is None,
                    reason="needs tmux and bash")
def test_top_ctrl_z_gives_the_terminal_back(daemon):
    """Ctrl-Z stops top with the shell's terminal restored (main screen,
    canonical mode, echo); fg brings the live frame back; q still quits."""
    d = daemon
    c = d.client()
    long_id, frozen = hold_running(d, c, seed=13)
    pane = None
    try:
        pane = Pane(None, 90, 24, shell=True)
        pane.wait_for(lambda s: s.rstrip().endswith("$"))
        pane.keys(f"{CLI} --url {d.url} top", "Enter")
        pane.wait_for(lambda s: "RUNNING (1)" in s)
        pane.keys("C-z")
        s = pane.wait_for(lambda s: "Stopped" in s)
        assert "RUNNING (1)" not in s  # the alternate screen is gone
        pane.keys("stty -a | tr '\\n' ' '; echo STTY-END", "Enter")
        s = pane.wait_for(lambda s: "STTY-END" in s.split("echo STTY-END", 1)[-1])
        stty = s[s.rindex("speed"):]
        assert " icanon " in stty and " echo " in stty, stty
        pane.keys("clear; fg", "Enter")
        pane.wait_for(lambda s: "RUNNING (1)" in s)
        pane.keys("q")
        s = pane.wait_for(lambda s: "RUNNING (1)" not in s and s.rstrip().endswith("$"))
        pane.keys("echo EXITED rc=$?", "Enter")
        pane.wait_for(lambda s: "EXITED rc=0" in s)
    finally:
        if pane is not None:
            pane.close()
        frozen.thaw()
        c.cancel(long_id)
        c.close()
