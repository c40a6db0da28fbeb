"""pytest setup for tests/gsn: import path and the neuroq-worker runner."""

import json
import os
import pathlib
import subprocess
import sys

# The oracle runs dozens of small factorizations: BLAS threads only spin on
# a shared box. Set before numpy loads; the worker keeps the caller's setting.
_WORKER_ENV = dict(os.environ)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "common"))
from nq_build import program  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device listed by neuroq-worker probe")


class Worker:
    def __init__(self, path):
        self.path = path

    def probe(self):
        out = subprocess.run([self.path, "probe"], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return []
        return [ln.split()[0] for ln in out.stdout.splitlines() if ln.strip()]

    def run(self, jobdir, data, params, device="cpu", check=True, timeout=600):
        """Run one gsn job by hand; returns (arrays, scalars, completed process)."""
        import msgpack

        jobdir = pathlib.Path(jobdir)
        (jobdir / "in").mkdir(parents=True, exist_ok=True)
        (jobdir / "out").mkdir(exist_ok=True)
        (jobdir / "params.mp").write_bytes(msgpack.packb(params, use_bin_type=True))
        np.save(jobdir / "in" / "data.npy", np.ascontiguousarray(data))
        proc = subprocess.run([self.path, "run", "--type", "gsn", "--dir", str(jobdir),
                               "--device", device], capture_output=True, text=True,
                              timeout=timeout, env=_WORKER_ENV)
        if check and proc.returncode != 0:
            err = jobdir / "error"
            msg = err.read_text() if err.exists() else ""
            raise AssertionError("neuroq-worker exit %d: %s\n%s" % (proc.returncode, msg,
                                                                    proc.stderr[-2000:]))
        arrays = {p.stem: np.load(p) for p in (jobdir / "out").glob("*.npy")}
        rj = jobdir / "out" / "result.json"
        scalars = json.loads(rj.read_text()) if rj.exists() else {}
        return arrays, scalars, proc


@pytest.fixture(scope="session")
def worker():
    path = program("daemon/neuroq-worker")
    pytest.importorskip("msgpack", reason="the python msgpack package writes params.mp")
    return Worker(path)
