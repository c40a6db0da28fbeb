"""ssh:// URLs: the CLI and the Python client reach the daemon through a real
sshd on 127.0.0.1 as real Unix users, and the jobs are owned by the user who
logged in over ssh (sshd connects to the daemon's ipc socket as that user).

Needs root (useradd, an sshd of its own) and OpenSSH (Debian: openssh-server
for /usr/sbin/sshd, openssh-client for ssh and ssh-keygen); skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import Frozen, client_copy_for_all, make_data, python_for, unix_users

SSHD = "/usr/sbin/sshd"
USERS = ("nq-ssh-a", "nq-ssh-b")
SMALL = (40, 20, 4)
BIG = (1500, 60, 4)  # runs ~1-5 s: long enough for progress events

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: creates Unix users and runs its own sshd"),
    pytest.mark.skipif(not os.access(SSHD, os.X_OK),
                       reason=f"{SSHD} missing (Debian package openssh-server)"),
    pytest.mark.skipif(not (shutil.which("ssh") and shutil.which("ssh-keygen")),
                       reason="ssh / ssh-keygen missing (Debian package openssh-client)"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="useradd missing"),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """Two users, their keys, an sshd on 127.0.0.1, and the daemon."""

    def __init__(self, daemon):
        self.d = daemon
        self._users = unix_users(*USERS, shell="/bin/sh")
        self.users = self._users.__enter__()
        for name in USERS:
            # useradd leaves the password "!" (locked): sshd without PAM then
            # refuses even key logins; "*" is "no password", not locked
            subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        self.dir = Path(tempfile.mkdtemp(prefix="nq-ssh-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        keys = self.dir / "authorized"
        keys.mkdir(mode=0o755)
        self.keygen(self.dir / "host_key")
        self.key = {}
        for name, pw in self.users.items():
            home = self.dir / f"home-{name}"
            for sub in (home, home / "tmp"):
                sub.mkdir(mode=0o700)
                os.chown(sub, pw.pw_uid, pw.pw_gid)
            k = self.keygen(home / "id")
            os.chown(k, pw.pw_uid, pw.pw_gid)
            self.key[name] = k
            (keys / name).write_text(Path(f"{k}.pub").read_text())
            os.chmod(keys / name, 0o644)
        # a key nobody authorized, owned by user a
        pw = self.users[USERS[0]]
        self.stranger = self.keygen(self.dir / f"home-{USERS[0]}" / "stranger")
        os.chown(self.stranger, pw.pw_uid, pw.pw_gid)
        self.port = _free_port()
        conf = self.dir / "sshd_config"
        conf.write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {self.dir}/host_key
            PidFile {self.dir}/sshd.pid
            AuthorizedKeysFile {keys}/%u
            StrictModes no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            PermitRootLogin no
            AllowUsers {' '.join(USERS)}
            AllowStreamLocalForwarding yes
            LogLevel VERBOSE
            """))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privsep dir
        self.sshd_log = open(self.dir / "sshd.log", "wb")
        self.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)],
                                     stdout=self.sshd_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            assert self.sshd.poll() is None, f"sshd exited:\n{self.sshd_log_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not listen in 10 s"
                time.sleep(0.05)

    def keygen(self, path):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True, capture_output=True)
        return path

    def sshd_log_text(self):
        self.sshd_log.flush()
        return (self.dir / "sshd.log").read_text(errors="replace")[-3000:]

    def url(self, user, port=None, path=None):
        path = path or self.d.url[len("ipc://"):]
        return f"ssh://{user}@127.0.0.1:{port or self.port}{path}"

    def env(self, user, key=None):
        home = self.dir / f"home-{user}"
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
                "TMPDIR": str(home / "tmp"), "LANG": "C.UTF-8",
                "NEUROQ_SSH_OPTS": f"-F /dev/null -i {key or self.key[user]} "
                                   "-o IdentitiesOnly=yes -o IdentityAgent=none "
                                   "-o StrictHostKeyChecking=no "
                                   "-o UserKnownHostsFile=/dev/null"}

    def cli(self, user, *args, url=None, key=None, timeout=120):
        return subprocess.run([str(self.d.cli_path(user=user)), "--url",
                               url or self.url(user), *map(str, args)],
                              capture_output=True, text=True, timeout=timeout,
                              user=user, env=self.env(user, key))

    def assert_clean(self, user):
        """No ssh of this user left running, no private dir left behind."""
        deadline = time.monotonic() + 5
        while True:
            r = subprocess.run(["pgrep", "-u", user, "-x", "ssh"], capture_output=True,
                               text=True)
            left = list((self.dir / f"home-{user}" / "tmp").iterdir())
            if not r.stdout.strip() and not left:
                return
            assert time.monotonic() < deadline, \
                f"left behind: ssh pids {r.stdout.split()}, files {left}"
            time.sleep(0.1)

    def close(self):
        if self.sshd.poll() is None:
            self.sshd.terminate()
            self.sshd.wait(10)
        self.sshd_log.close()
        self._users.__exit__(None, None, None)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def lab(daemon_factory, request):
    d = daemon_factory(world=True)  # socket 0666 in a 0755 dir
    lab = Lab(d)
    yield lab
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write(f"--- sshd log\n{lab.sshd_log_text()}\n")
    lab.close()


def test_cli_over_ssh_owner_is_the_ssh_user(lab):
    a, b = USERS
    ua, ub = lab.users[a].pw_uid, lab.users[b].pw_uid
    data = lab.dir / "small.npy"
    np.save(data, make_data(*SMALL, seed=41))
    os.chmod(data, 0o644)

    r = lab.cli(a, "--json", "submit", "gsn", "--data", data)
    assert r.returncode == 0, r.stderr
    jid = json.loads(r.stdout)["id"]
    r = lab.cli(a, "wait", jid, "--timeout", "120")
    assert r.returncode == 0, r.stderr
    out = lab.dir / f"home-{a}" / "res"
    r = lab.cli(a, "result", jid, "--out", out)
    assert r.returncode == 0, r.stderr
    assert np.load(out / "cSb.npy").shape == (SMALL[0], SMALL[0])
    lab.assert_clean(a)

    # root, over the local ipc socket: the job is a's, not root's
    with lab.d.client() as c:
        job = c.status(jid)
    assert job["state"] == "DONE"
    assert job["owner"] == ua and ua != 0 and ua != os.geteuid()
    # b over ssh sees b's identity and none of a's jobs
    r = lab.cli(b, "--json", "list")
    assert r.returncode == 0, r.stderr
    assert all(j["owner"] == ub for j in json.loads(r.stdout))
    r = lab.cli(b, "cancel", jid)
    assert r.returncode == 1 and "EPERM" in r.stderr, r.stderr
    lab.assert_clean(b)


def test_cli_over_ssh_failures_are_clear_and_quick(lab):
    a = USERS[0]
    cases = [
        # (url, key, what stderr must say)
        (lab.url(a), lab.stranger, "Permission denied"),
        (lab.url(a, port=_free_port()), None, "Connection refused"),
        (lab.url(a, path="/tmp/no-such-neuroq.sock"), None, "did not answer"),
        ("ssh://h:99999/x", None, "bad URL"),
    ]
    for url, key, want in cases:
        t0 = time.monotonic()
        r = lab.cli(a, "--timeout", "20", "status", "1", url=url, key=key, timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 5, (url, r.returncode, r.stderr)
        assert want in r.stderr and url in r.stderr, (url, r.stderr)
        assert took < 10, (url, took, r.stderr)
        lab.assert_clean(a)


PY_CLIENT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import neuroq

url, data = sys.argv[2], sys.argv[3]
out = {}
with neuroq.Client(url, timeout=30) as c:
    out["uid"] = c.hello()["uid"]
    ev = c.events_url()
    out["events_local"] = bool(ev) and ev.startswith("ipc://") and "neuroq-ssh-" in ev
    job = c.submit("gsn", inputs={"data": np.load(data)})
    print(json.dumps({"id": job.id}), flush=True)
    final = job.wait(progress=False, timeout=300)
    out.update(id=job.id, state=final["state"], events_seen=job.events_seen,
               shape=list(job.result(["cSb"])["cSb"].shape))
# garbage collection stops ssh and removes the private dir
import gc, os
c2 = neuroq.Client(url, timeout=30)
c2.hello()
assert os.listdir(os.environ["TMPDIR"]), "no private dir while connected?"
del c2
gc.collect()
out["left_after_gc"] = os.listdir(os.environ["TMPDIR"])
# ... and so does interpreter exit (the caller checks): never closed
c3 = neuroq.Client(url, timeout=30)
c3.events_url()
try:
    neuroq.Client(sys.argv[4], timeout=10)
    out["bad"] = "connected?"
except neuroq.NeuroqError as e:
    out["bad"] = str(e)
print(json.dumps(out), flush=True)
"""


def test_python_client_over_ssh(lab):
    a = USERS[0]
    ua = lab.users[a].pw_uid
    pkg = client_copy_for_all(lab.dir / "py")
    script = pkg / "run.py"
    script.write_text(PY_CLIENT)
    os.chmod(script, 0o644)
    python, env = python_for(a, lab.env(a))
    data = lab.dir / "big.npy"
    np.save(data, make_data(*BIG, seed=42))
    os.chmod(data, 0o644)

    with lab.d.client() as c:
        # hold the only cpu slot, so a's waiter subscribes before its job
        # starts: the RUNNING and progress events cannot be missed
        blocker = c.submit("gsn", inputs={"data": make_data(*BIG, seed=43)})
        frozen = Frozen(lab.d, c, blocker.id)
        try:
            p = subprocess.Popen([python, str(script), str(pkg), lab.url(a),
                                  str(data), lab.url(a, port=_free_port())],
                                 user=a, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            first = p.stdout.readline()
            assert first, p.communicate(timeout=30)[1]
            jid = json.loads(first)["id"]
            time.sleep(1.0)
        finally:
            c.cancel(blocker.id)
            frozen.thaw()
        rest, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        out = json.loads(rest.strip().splitlines()[-1])
        job = c.status(jid)
    assert out["uid"] == ua
    assert job["owner"] == ua
    assert out["state"] == "DONE" and out["shape"] == [BIG[0], BIG[0]]
    assert out["events_local"], out
    assert out["events_seen"] > 0, "no event came through the forwarded events socket"
    assert "Connection refused" in out["bad"], out["bad"]
    assert out["left_after_gc"] == []
    lab.assert_clean(a)


def test_cli_killed_leaves_no_ssh(lab):
    """A CLI stopped by a signal while waiting takes its ssh along."""
    import signal

    a = USERS[0]
    with lab.d.client() as c:
        blocker = c.submit("gsn", inputs={"data": make_data(*BIG, seed=44)})
        frozen = Frozen(lab.d, c, blocker.id)
        try:
            # SIGTERM at once: most likely while ssh still logs in
            for sig, after in ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.0),
                               (signal.SIGKILL, 0.5)):
                p = subprocess.Popen([str(lab.d.cli_path(user=a)), "--url", lab.url(a),
                                      "wait", str(blocker.id)], user=a, env=lab.env(a),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                deadline = time.monotonic() + 20
                while not subprocess.run(["pgrep", "-u", a, "-x", "ssh"],
                                         capture_output=True).stdout:
                    assert p.poll() is None, p.stderr.read()
                    assert time.monotonic() < deadline, "no ssh started"
                    time.sleep(0.05)
                time.sleep(after)  # 0.5: connected, polling
                p.send_signal(sig)
                p.wait(10)
                p.stderr.close()
                if sig == signal.SIGKILL:
                    # no handler runs: ssh goes by PR_SET_PDEATHSIG, the
                    # directory stays (only /tmp cleaning removes it)
                    for left in (lab.dir / f"home-{a}" / "tmp").iterdir():
                        shutil.rmtree(left)
                lab.assert_clean(a)
        finally:
            c.cancel(blocker.id)
            frozen.thaw()
