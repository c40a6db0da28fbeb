"""Helpers for tests/slurm and bench/slurm_bench.py (issue 11): a loopback
Slurm cluster (cluster.sh: its own munged, one slurmctld, two slurmd nodes
with two fake GPUs each) and neuroqd with `executor = slurm` against it.

The daemon's helpers (Daemon, make_data, wait_state, unix_users, ...) are
tests/e2e/conftest.py's, imported from there (as the module
nq_e2e_conftest: the name `conftest` is pytest's, for the conftest.py of
whichever directory it loaded last).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLUSTER_SH = HERE / "cluster.sh"


def _load_e2e():
    name = "nq_e2e_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE.parent / "e2e" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


e2e = _load_e2e()
# what the tests use, from tests/e2e/conftest.py
Daemon = e2e.Daemon
GSN_ARRAYS = e2e.GSN_ARRAYS
GSN_SCALARS = e2e.GSN_SCALARS
LONG_JOB = e2e.LONG_JOB
NEUROQD = e2e.NEUROQD
TERMINAL = e2e.TERMINAL
WORKER = e2e.WORKER
assert_gsn_sane = e2e.assert_gsn_sane
assert_same_result = e2e.assert_same_result
make_data = e2e.make_data
read_out_dir = e2e.read_out_dir
run_worker = e2e.run_worker
unix_users = e2e.unix_users
wait_all = e2e.wait_all
wait_state = e2e.wait_state
_need_binaries = e2e._need_binaries
_state_dir = e2e._state_dir

# Slurm's commands the daemon may run; each gets a logging wrapper in the
# daemon's slurm_bin_dir (SlurmCluster.calls counts them)
SLURM_COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "sacct", "sprio",
                  "sstat", "srun")
# the daemon's test devices (neuroqd --devices): the cluster's GPUs are
# fake, so a job the scheduler puts on a GPU (Slurm: --gres=gpu:1) runs the
# cpu backend on it, as fake:N does locally (daemon/devname.h)
FAKE_GPUS = "cpu,fake:0:8GiB"
UP_TIMEOUT = 90  # s: the cluster's nodes idle (cluster.sh start's bound)
POLL_S = 1  # the test daemons' slurm_poll_s


def _sh(*cmd, timeout=60, env=None, check=False):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, env=env, check=check)


class SlurmCluster:
    """A running loopback cluster (cluster.sh's DIR)."""

    def __init__(self, root, env):
        self.root = Path(root)
        self.env = env  # SLURM_CONF, NQ_SLURM_PARTITION, NQ_SLURM_NODES, ...
        self.conf = env["SLURM_CONF"]
        self.partition = env["NQ_SLURM_PARTITION"]
        self.nodes = env["NQ_SLURM_NODES"].split(",")
        self.gpus_per_node = int(env["NQ_SLURM_GRES"].rsplit(":", 1)[1])
        self.gres_type = env["NQ_SLURM_GRES"].split(":")[1]

    def run(self, *cmd, timeout=30, check=True):
        """A Slurm command against this cluster (as root); CompletedProcess."""
        r = _sh(*cmd, timeout=timeout, env={**os.environ, "SLURM_CONF": self.conf})
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: "
                                 f"{r.stderr.strip()}")
        return r

    def squeue(self):
        """{slurm id: {state, reason, user, node, name, time_limit, workdir}}
        of every job slurmctld still knows (finished ones for MinJobAge)."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%T|%r|%u|%N|%j|%l|%Z").stdout
        jobs = {}
        for line in out.splitlines():
            i, st, reason, user, node, name, tl, wd = line.split("|", 7)
            jobs[i] = {"state": st, "reason": reason, "user": user, "node": node,
                       "name": name, "time_limit": tl, "workdir": wd}
        return jobs

    def scontrol_job(self, slurm_id):
        """`scontrol show job` as a dict of its Key=Value words (empty when
        slurmctld forgot the job)."""
        r = self.run("scontrol", "-o", "show", "job", str(slurm_id), check=False)
        if r.returncode != 0:
            return {}
        out = {}
        for w in r.stdout.split():
            k, _, v = w.partition("=")
            out.setdefault(k, v)
        return out

    def node_states(self):
        out = self.run("sinfo", "-h", "-N", "-p", self.partition, "-o", "%N %t").stdout
        return dict(line.split() for line in out.splitlines())

    def wait_nodes(self, want=("idle",), nodes=None, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            st = self.node_states()
            if all(st.get(n) in want for n in (nodes or self.nodes)):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes {st} not {want} after {timeout} s")
            time.sleep(0.5)

    def node_stop(self, node):
        """The node dies: its slurmd and every process of its jobs SIGKILLed."""
        _sh(CLUSTER_SH, "node-stop", self.root, node, check=True)

    def node_start(self, node):
        _sh(CLUSTER_SH, "node-start", self.root, node, check=True)

    def block(self, nodes=None, seconds=600):
        """Fill every GPU and CPU of `nodes` (default: all) with a root job
        that sleeps; returns its Slurm ids. Jobs submitted behind them pend
        on Resources until unblock()."""
        ids = []
        for n in nodes or self.nodes:
            r = self.run("sbatch", "--parsable", "--job-name=nqtest-blocker", "-w", n,
                         "--exclusive", f"--gres=gpu:{self.gpus_per_node}", "--mem=1",
                         "-o", "/dev/null", "--wrap", f"sleep {seconds}")
            ids.append(r.stdout.strip().split(";")[0])
        deadline = time.monotonic() + 30
        while any(self.squeue().get(i, {}).get("state") != "RUNNING" for i in ids):
            assert time.monotonic() < deadline, f"blockers not running: {self.squeue()}"
            time.sleep(0.2)
        return ids

    def unblock(self, ids):
        if ids:
            self.run("scancel", *ids, check=False)

    def cancel_all(self):
        """No job of an earlier test left in the cluster."""
        self.run("scancel", "-p", self.partition, check=False)
        deadline = time.monotonic() + 30
        while any(j["state"] in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")
                  for j in self.squeue().values()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)


def _why_no_slurm():
    if os.geteuid() != 0:
        return "needs root (munged and slurmd of the loopback cluster)"
    for b in ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munged"):
        if shutil.which(b) is None and not os.access(f"/usr/sbin/{b}", os.X_OK):
            return (f"{b} missing: apt-get install slurmctld slurmd slurm-client munge "
                    "(deploy/install-deps.sh --ci)")
    if shutil.which("ss") is None:
        return "ss (iproute2) missing"
    return None


def start_cluster(root):
    """cluster.sh start in `root` (made 0755); the SlurmCluster, or
    RuntimeError with the reason it did not come up (stopped again)."""
    why = _why_no_slurm()
    if why:
        raise RuntimeError(why)
    root = Path(root)
    root.mkdir(mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)
    try:
        r = _sh(CLUSTER_SH, "start", root, timeout=2 * UP_TIMEOUT + 60, env=_cluster_env())
    except subprocess.TimeoutExpired:
        r = None
    if r is None or r.returncode != 0:
        stop_cluster(root)
        detail = "timed out" if r is None else r.stderr.strip()[-1500:]
        raise RuntimeError(f"the loopback Slurm cluster did not come up: {detail}")
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return SlurmCluster(root, kv)


def stop_cluster(root):
    _sh(CLUSTER_SH, "stop", root, timeout=120, env=_cluster_env())


def _cluster_env():
    return dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
                NQ_SLURM_UP_S=str(UP_TIMEOUT))


def _wrappers(bindir, conf, log):
    """slurm_bin_dir of wrapper scripts: each logs its call (a line
    `<time> <command> <args>`) and runs the real command with SLURM_CONF."""
    bindir.mkdir(mode=0o755)
    for name in SLURM_COMMANDS:
        real = shutil.which(name)
        if real is None:
            continue
        w = bindir / name
        w.write_text("#!/bin/sh\n"
                     f"echo \"$(date +%s.%N) {name} $*\" >>'{log}'\n"
                     f"SLURM_CONF='{conf}' exec '{real}' \"$@\"\n")
        w.chmod(0o755)


class SlurmDaemon(Daemon):
    """A neuroqd with executor = slurm: state dir local (a tmp dir), job dirs
    in slurm_spool_dir (another tmp dir, world-readable: the nodes run jobs
    as their owners), Slurm's commands through logging wrappers."""

    def __init__(self, cluster, conf=None, devices=FAKE_GPUS, **kw):
        super().__init__(_state_dir(world=True), world=True, devices=devices, **kw)
        self.cluster = cluster
        self.spool = Path(tempfile.mkdtemp(prefix="nq-spool-", dir="/tmp"))
        os.chmod(self.spool, 0o755)
        # the worker where every user may run it (the build tree may sit
        # under a 0700 dir)
        bindir = self.dir / "bin"
        bindir.mkdir(mode=0o755)
        self.worker = bindir / "neuroq-worker"
        shutil.copy2(WORKER, self.worker)
        os.chmod(self.worker, 0o755)
        self.calls_log = self.dir / "slurm-calls.log"
        self.calls_log.touch()
        os.chmod(self.calls_log, 0o666)
        self.slurm_bin = self.dir / "slurm-bin"
        _wrappers(self.slurm_bin, cluster.conf, self.calls_log)
        self.conf.update({
            "executor": "slurm",
            "slurm_spool_dir": str(self.spool),
            "slurm_partition": cluster.partition,
            "slurm_poll_s": POLL_S,
            "slurm_bin_dir": str(self.slurm_bin),
            "worker_path": str(self.worker),
        })
        self.conf.update(conf or {})

    def calls(self, command=None, since=0.0):
        """The logged Slurm calls [(time, command, args)], of one command,
        made after `since` (time.time())."""
        out = []
        for line in self.calls_log.read_text().splitlines():
            t, _, rest = line.partition(" ")
            cmd, _, args = rest.partition(" ")
            if (command is None or cmd == command) and float(t) >= since:
                out.append((float(t), cmd, args))
        return out

    def job_dir(self, job_id):
        return self.spool / "jobs" / str(job_id)


