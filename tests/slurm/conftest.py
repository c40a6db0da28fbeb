"""pytest fixtures for tests/slurm (issue 11): the session's loopback Slurm
cluster and neuroqd daemons with `executor = slurm`. The helpers are in
slurmlib.py (imported by that name: pytest's module name `conftest` belongs
to whichever directory's conftest.py it loaded last).

Every test skips, with the reason, when the cluster cannot run: not root
(munged and slurmd need it), Slurm or munge not installed
(deploy/install-deps.sh --ci installs them), or it did not come up.
"""

from __future__ import annotations

import shutil
import sys
import tempfile

import pytest

from slurmlib import FAKE_GPUS, SlurmDaemon, _need_binaries, start_cluster, stop_cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    """The session's loopback cluster; skips (with the reason) when it cannot
    start."""
    root = tempfile.mkdtemp(prefix="nq-slurm-", dir="/tmp")
    try:
        cluster = start_cluster(root)
    except RuntimeError as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(str(e))
    try:
        yield cluster
    finally:
        stop_cluster(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def slurm_daemon_factory(request, slurm_cluster):
    """slurm_daemon_factory(conf=None, start=True) -> SlurmDaemon (stopped,
    its jobs cancelled in the cluster and its dirs removed at teardown; its
    log and the Slurm logs' tails are shown when the test fails)."""
    _need_binaries()
    slurm_cluster.cancel_all()
    made = []

    def make(conf=None, start=True, devices=FAKE_GPUS):
        d = SlurmDaemon(slurm_cluster, conf=conf, devices=devices)
        made.append(d)
        return d.start() if start else d

    yield make
    failed = getattr(request.node, "rep_call", None)
    for d in made:
        if failed is not None and failed.failed:
            sys.stderr.write(f"--- neuroqd log {d.log_path}\n{d.log_tail(80)}\n")
            sys.stderr.write(f"--- squeue\n{slurm_cluster.squeue()}\n")
            for log in sorted((slurm_cluster.root / "log").glob("slurm*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                sys.stderr.write(f"--- {log}\n" + "\n".join(tail) + "\n")
        d.stop()
    slurm_cluster.cancel_all()
    for n in slurm_cluster.nodes:  # a test that stopped a node starts it again
        if slurm_cluster.node_states().get(n) not in ("idle", "mix", "alloc"):
            slurm_cluster.node_start(n)
    for d in made:
        shutil.rmtree(d.dir, ignore_errors=True)
        shutil.rmtree(d.spool, ignore_errors=True)


@pytest.fixture
def slurm_daemon(slurm_daemon_factory):
    return slurm_daemon_factory()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


