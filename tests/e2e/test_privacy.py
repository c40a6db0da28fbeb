"""A user sees only their own jobs; administrators see all (issue 9).

Real Unix users against a daemon on a world-connectable socket (0666 in a
0755 dir): alice and bob are lab members, carol is in the daemon's
admin_group. bob asking about alice's job gets EPERM and learns nothing about
it; `list --all-users` gives bob counts only; each user's events socket
carries only their jobs' events and refuses anyone else's subscriber. And
tcp:// listens only as an explicit unauthenticated opt-in.

Needs root (useradd, running clients as other uids); skips otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import time

import numpy as np
import pynng
import pytest

import neuroq
from conftest import (LONG_JOB, NEUROQD, START_TIMEOUT, Frozen, client_copy_for_all, make_data,
                      python_for, unix_users, wait_state)

ALICE, BOB, CAROL = "nq-priv-alice", "nq-priv-bob", "nq-priv-carol"
ADMINS = "nq-priv-adm"
SMALL = (20, 10, 4)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: creates Unix users and runs clients as them"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="useradd missing"),
]


# ---- users


@pytest.fixture(scope="module")
def users():
    """alice, bob, carol (carol in ADMINS); made when missing, removed after."""
    with unix_users(CAROL, groups=(ADMINS,), shell="/bin/sh"), \
            unix_users(ALICE, BOB, shell="/bin/sh"):
        for name in (ALICE, BOB):  # an earlier run's leftovers
            subprocess.run(["gpasswd", "-d", name, ADMINS], capture_output=True)
        yield {n: pwd.getpwnam(n) for n in (ALICE, BOB, CAROL)}


@pytest.fixture
def lab(daemon_factory, users):
    """A daemon everyone may connect to, ADMINS its admin group."""
    d = daemon_factory(world=True, conf={"admin_group": ADMINS})
    return d


def data_file(d, seed=1, shape=SMALL):
    p = d.dir / f"data-{seed}.npy"
    np.save(p, make_data(*shape, seed=seed))
    os.chmod(p, 0o644)
    return p


def submit_as(d, user, seed=1, shape=SMALL):
    r = d.cli("--json", "submit", "gsn", "--data", data_file(d, seed, shape), user=user)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["id"]


# ---- Python as another user


def python_as(d, user):
    """(python, env) that `user` can run with numpy/msgpack/pynng and neuroq."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    return python_for(user, env, pkg=client_copy_for_all(d.dir / "py"))


HELLO = """
import json, sys, neuroq
with neuroq.Client(sys.argv[1], timeout=20) as c:
    h = c.hello()
    jobs = c.jobs(all_users=True)
print(json.dumps({"hello": h, "jobs": list(jobs), "others": jobs.others}))
"""


def hello_as(d, user):
    python, env = python_as(d, user)
    r = subprocess.run([python, "-c", HELLO, d.url], user=user, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# a subscriber that prints the topics it received once `stop` exists
SUB = """
import json, os, sys, time, pynng
url, stop = sys.argv[1], sys.argv[2]
s = pynng.Sub0(recv_timeout=100)
s.subscribe(b"job.")
pipes = {"added": 0, "removed": 0}
s.add_post_pipe_connect_cb(lambda p: pipes.__setitem__("added", pipes["added"] + 1))
s.add_post_pipe_remove_cb(lambda p: pipes.__setitem__("removed", pipes["removed"] + 1))
s.dial(url, block=False)
print("ready", flush=True)
topics = []
end = time.monotonic() + 300
while time.monotonic() < end and not os.path.exists(stop):
    try:
        m = s.recv()
    except pynng.Timeout:
        continue
    topics.append(m[:m.index(b".", 4) + 1].decode())
s.close()
print(json.dumps({"topics": topics, **pipes}), flush=True)
"""


class Subscriber:
    def __init__(self, d, user, url, name):
        python, env = python_as(d, user)
        self.stop = d.dir / f"stop-{name}"
        self.p = subprocess.Popen([python, "-c", SUB, url, str(self.stop)], user=user,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        assert self.p.stdout.readline().strip() == "ready", self.p.stderr.read()

    def result(self):
        self.stop.touch()
        out, err = self.p.communicate(timeout=30)
        assert self.p.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])


# ---- the job operations


def test_others_job_is_private(lab, users):
    d = lab
    ua = users[ALICE].pw_uid
    jid = submit_as(d, ALICE, seed=1)
    with d.client() as c:
        wait_state(c, jid, ("DONE",), timeout=120)
    r = d.cli("logs", jid, user=ALICE)
    assert r.returncode == 0, r.stderr

    # bob: EPERM for each op, and the message tells nothing about the job
    for op in (("status", jid), ("logs", jid), ("result", jid, "--out", "/tmp/x"),
               ("cancel", jid), ("wait", jid, "--timeout", "5")):
        r = d.cli(*op, user=BOB)
        assert r.returncode == 1, (op, r.returncode, r.stdout, r.stderr)
        # the same words for every job: nothing about this one but its id
        assert r.stderr == (f"neuroq: EPERM: job {jid} is not yours; only its owner "
                            "or an administrator may see or change it\n"), (op, r.stderr)
        assert r.stdout == "", (op, r.stdout)
    # the same over the wire (Python client as bob): PermissionDenied
    python, env = python_as(d, BOB)
    code = ("import sys, neuroq\n"
            "c = neuroq.Client(sys.argv[1], timeout=20)\n"
            "for f in (c.status, c.logs, c.result, c.cancel):\n"
            "    try:\n"
            "        f(int(sys.argv[2]))\n"
            "        print('ALLOWED', f.__name__)\n"
            "    except neuroq.errors.PermissionDenied as e:\n"
            "        print('EPERM', e.message)\n")
    r = subprocess.run([python, "-c", code, d.url, str(jid)], user=BOB, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and all(x.startswith("EPERM ") for x in lines), lines
    assert all(str(ua) not in x for x in lines)

    # alice herself, carol (admin group) and root may
    for who in (ALICE, CAROL, None):
        r = d.cli("--json", "status", jid, user=who)
        assert r.returncode == 0, (who, r.stderr)
        assert json.loads(r.stdout)["owner"] == ua
        out = d.dir / f"res-{who}"
        out.mkdir()
        if who is not None:
            os.chown(out, pwd.getpwnam(who).pw_uid, -1)
        r = d.cli("result", jid, "--out", out, user=who)
        assert r.returncode == 0, (who, r.stderr)
        assert (out / "cSb.npy").exists()
    with d.client() as c:
        assert c.status(jid)["state"] == "DONE"  # bob's cancel did nothing


def test_cancel_of_others_queued_job(lab, users):
    d = lab
    with d.client() as c:
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=2)})
        frozen = Frozen(d, c, blocker.id)
        try:
            a1 = submit_as(d, ALICE, seed=3)
            a2 = submit_as(d, ALICE, seed=4)
            r = d.cli("cancel", a1, user=BOB)
            assert r.returncode == 1 and "EPERM" in r.stderr, r.stderr
            assert c.status(a1)["state"] == "QUEUED"
            assert not c.status(a1)["cancel_requested"]
            # an administrator may cancel anyone's job
            r = d.cli("cancel", a1, user=CAROL)
            assert r.returncode == 0, r.stderr
            assert c.status(a1)["state"] == "CANCELED"
            # devices: bob sees how many run, not whose or which
            r = d.cli("--json", "devices", user=BOB)
            cpu = json.loads(r.stdout)["devices"][0]
            assert cpu["running"] == [] and cpu["running_count"] == 1, cpu
            r = d.cli("--json", "devices", user=CAROL)
            cpu = json.loads(r.stdout)["devices"][0]
            assert cpu["running"] == [blocker.id] and cpu["running_count"] == 1, cpu
        finally:
            c.cancel(blocker.id)
            frozen.thaw()
        wait_state(c, a2, ("DONE",), timeout=120)


def test_list_all_users_counts_only_for_members(lab, users):
    d = lab
    ua, ub = users[ALICE].pw_uid, users[BOB].pw_uid
    with d.client() as c:
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=5)})
        frozen = Frozen(d, c, blocker.id)
        try:
            a = [submit_as(d, ALICE, seed=6 + i) for i in range(3)]
            b = submit_as(d, BOB, seed=9)
            # bob: his own job, and the others' as counts
            r = d.cli("--json", "list", "--all-users", user=BOB)
            assert r.returncode == 0, r.stderr
            jobs = json.loads(r.stdout)
            assert [j["id"] for j in jobs] == [b]
            assert "other users' jobs: 3 queued, 1 running" in r.stderr, r.stderr
            r = d.cli("list", "--all-users", user=BOB)
            assert r.returncode == 0, r.stderr
            assert "other users' jobs: 3 queued, 1 running" in r.stdout
            rows = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.strip()]
            assert [int(x[0]) for x in rows if x[0].isdigit()] == [b], r.stdout
            assert all(int(x[3]) == ub for x in rows if x[0].isdigit()), r.stdout
            # the Python client: a list, with .others
            h = hello_as(d, BOB)
            assert [j["id"] for j in h["jobs"]] == [b]
            assert h["others"] == {"queued": 3, "running": 1}
            assert h["hello"]["admin"] is False
            # without --all-users: no counts
            r = d.cli("list", user=BOB)
            assert "other users" not in r.stdout
            # carol (admin group) and root: every job, no counts
            for who in (CAROL, None):
                r = d.cli("--json", "list", "--all-users", user=who)
                assert r.returncode == 0, r.stderr
                ids = {j["id"] for j in json.loads(r.stdout)}
                assert ids == {blocker.id, b, *a}, (who, ids)
                assert "other users" not in r.stderr
            h = hello_as(d, CAROL)
            assert h["hello"]["admin"] is True and h["others"] is None
            assert {j["owner"] for j in h["jobs"]} == {0, ua, ub}
        finally:
            c.cancel(blocker.id)
            frozen.thaw()


# ---- events


def test_events_only_to_their_owner(lab, users):
    d = lab
    ua, ub = users[ALICE].pw_uid, users[BOB].pw_uid
    ha, hb, hc = hello_as(d, ALICE), hello_as(d, BOB), hello_as(d, CAROL)
    ev_a, ev_b = ha["hello"]["events"], hb["hello"]["events"]
    assert ev_a == f"ipc://{d.dir}/events-{ua}.sock"
    assert ev_b == f"ipc://{d.dir}/events-{ub}.sock"
    assert hc["hello"]["events"] == d.events  # administrators: everything
    with d.client() as c:
        assert c.hello()["events"] == d.events  # root too
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=10)})
        frozen = Frozen(d, c, blocker.id)
        admin = pynng.Sub0(recv_timeout=100)
        admin.subscribe(b"job.")
        admin.dial(d.events, block=True)
        subs = {}
        try:
            subs["alice@alice"] = Subscriber(d, ALICE, ev_a, "aa")
            subs["bob@alice"] = Subscriber(d, BOB, ev_a, "ba")
            subs["bob@bob"] = Subscriber(d, BOB, ev_b, "bb")
            subs["bob@admin"] = Subscriber(d, BOB, d.events, "bx")
            subs["carol@admin"] = Subscriber(d, CAROL, d.events, "cx")
            time.sleep(1.0)  # the dials are done (or refused)
            ja = submit_as(d, ALICE, seed=11)
            jb = submit_as(d, BOB, seed=12)
        finally:
            c.cancel(blocker.id)
            frozen.thaw()
        wait_state(c, ja, ("DONE",), timeout=120)
        wait_state(c, jb, ("DONE",), timeout=120)
        time.sleep(0.5)
        got = {k: s.result() for k, s in subs.items()}
        seen_admin = set()
        while True:
            try:
                m = admin.recv()
            except pynng.Timeout:
                break
            seen_admin.add(m[:m.index(b".", 4) + 1].decode())
        admin.close()
    ta, tb = f"job.{ja}.", f"job.{jb}."
    topics = {k: set(v["topics"]) for k, v in got.items()}
    assert ta in topics["alice@alice"] and tb not in topics["alice@alice"], got
    assert topics["bob@alice"] == set(), got
    assert tb in topics["bob@bob"] and ta not in topics["bob@bob"], got
    assert topics["bob@admin"] == set(), got
    assert {ta, tb} <= topics["carol@admin"], got
    assert {ta, tb, f"job.{blocker.id}."} <= seen_admin
    # the refused pipes were closed before they joined, and logged
    log = d.log_path.read_text()
    assert f"events subscriber refused url={ev_a} uid={ub} reason=not-its-user" in log
    assert f"events subscriber refused url={d.events} uid={ub}" in log
    assert got["bob@alice"]["removed"] >= got["bob@alice"]["added"]


def test_python_wait_uses_own_events(lab, users):
    """Job.wait as a member: events come through hello's (own) socket."""
    d = lab
    python, env = python_as(d, ALICE)
    code = ("import json, sys, numpy as np, neuroq\n"
            "with neuroq.Client(sys.argv[1], timeout=30) as c:\n"
            "    job = c.submit('gsn', inputs={'data': np.load(sys.argv[2])})\n"
            "    print(job.id, flush=True)\n"
            "    st = job.wait(progress=False, timeout=300)['state']\n"
            "    print(json.dumps({'state': st, 'events': job.events_seen,"
            " 'url': c.events_url()}))\n")
    data = data_file(d, seed=13, shape=LONG_JOB)
    with d.client() as c:
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=14)})
        frozen = Frozen(d, c, blocker.id)
        try:
            p = subprocess.Popen([python, "-c", code, d.url, str(data)], user=ALICE, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            first = p.stdout.readline()
            assert first.strip().isdigit(), p.communicate(timeout=30)[1]
            time.sleep(1.0)  # subscribed before the job starts
        finally:
            c.cancel(blocker.id)
            frozen.thaw()
        rest, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    out = json.loads(rest.strip().splitlines()[-1])
    assert out["state"] == "DONE"
    assert out["url"].endswith(f"/events-{users[ALICE].pw_uid}.sock")
    assert out["events"] > 0, "no event arrived on alice's own events socket"


# ---- tcp://


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(d, listen, conf):
    """neuroqd with several --listen URLs (the fixture gives one): returns the
    process, already answering on the ipc socket, or its exit code."""
    d.conf.update(conf)
    d.conf_path.write_text("".join(f"{k} = {v}\n" for k, v in d.conf.items()))
    d._log = open(d.log_path, "ab")
    d.proc = subprocess.Popen(
        [str(NEUROQD), "--state-dir", str(d.dir), "--listen", ",".join(listen),
         "--events", d.events, "--devices", "cpu", "--config", str(d.conf_path)],
        stdout=d._log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if d.proc.poll() is not None:
            return d.proc.returncode
        try:
            with neuroq.Client(d.url, timeout=2) as c:
                c.hello()
                return None
        except neuroq.NeuroqError:
            time.sleep(0.1)
    raise AssertionError(f"neuroqd did not start:\n{d.log_tail()}")


def test_tcp_needs_explicit_opt_in(daemon_factory):
    port = _free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    d = daemon_factory(start=False)
    rc = _start(d, [d.url, tcp], {})
    assert rc not in (None, 0)
    log = d.log_path.read_text()
    assert f"listen: {tcp} carries no identity" in log, log
    assert "ssh://" in log and "tcp_unauthenticated = yes" in log
    # nothing listens there
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    # tcp_owner_uid is never root
    d2 = daemon_factory(start=False)
    rc = _start(d2, [d2.url, tcp], {"tcp_unauthenticated": "yes", "tcp_owner_uid": 0})
    assert rc not in (None, 0)
    assert "tcp_owner_uid: expected a uid other than 0" in d2.log_path.read_text()


def test_tcp_opt_in_is_anonymous_and_private(daemon_factory):
    # the TCP owner is a real user: jobs run as their owner
    with unix_users("nq-priv-tcp") as pw:
        _tcp_opt_in(daemon_factory, pw["nq-priv-tcp"].pw_uid)


def _tcp_opt_in(daemon_factory, uid):
    port = _free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    d = daemon_factory(start=False)
    assert _start(d, [d.url, tcp], {"tcp_unauthenticated": "yes",
                                    "tcp_owner_uid": uid}) is None
    log = d.log_path.read_text()
    assert f"listening WITHOUT AUTHENTICATION url={tcp} owner_uid={uid}" in log
    with neuroq.Client(tcp, timeout=20) as t, d.client() as c:
        h = t.hello()
        assert h["uid"] == uid and h["admin"] is False
        assert h["events"] == ""  # no events socket for TCP callers
        mine = c.submit("gsn", inputs={"data": make_data(*SMALL, seed=20)})
        theirs = t.submit("gsn", inputs={"data": make_data(*SMALL, seed=21)})
        assert c.status(theirs.id)["owner"] == uid
        # a TCP caller is a user like any other: root's job is not theirs
        with pytest.raises(neuroq.errors.PermissionDenied):
            t.status(mine.id)
        assert [j["id"] for j in t.jobs(all_users=True)] == [theirs.id]
        final = theirs.wait(progress=False, timeout=120)  # polls status
        assert final["state"] == "DONE"
        wait_state(c, mine.id, ("DONE",), timeout=120)
    assert not any(p.name.startswith("events-") for p in d.dir.iterdir())
