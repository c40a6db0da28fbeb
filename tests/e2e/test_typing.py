"""The client's public API is typed: `mypy --strict` (the settings in
client/python/pyproject.toml) finds nothing in the package, and the package
says so to type checkers (py.typed).  Skips where mypy is not installed."""

import os
import subprocess
import sys

import pytest

from conftest import REPO

PKG = REPO / "client" / "python"


def test_py_typed_marker():
    assert (PKG / "neuroq" / "py.typed").is_file()


# code written against the client: what its annotations promise a user
USER = """
import numpy as np
import neuroq
from neuroq import errors

def main(x: np.ndarray) -> float:
    with neuroq.Client("ipc:///nowhere", timeout=1) as c:
        job: neuroq.Job = c.submit("gsn", inputs={"data": x}, params={"wantshrinkage": True})
        state: str = job.wait(progress=False)["state"]
        names: list[str] = sorted(job.result())
        res = neuroq.perform_gsn(x, {"wantshrinkage": 1}, client=c, device="cpu")
        sorted_: dict[str, object] = neuroq.spikesort("r.bin", n_channels=4, sample_rate=3e4)
        later: neuroq.Job = neuroq.spikesort("r.bin", wait=False, client=c)
    code: int = errors.BadParam.code
    cls: type[errors.NeuroqError] = errors.BY_CODE[6]
    print(state, names, sorted_, later, code, cls)
    return float(res["shrinklevelN"])
"""


def test_mypy_strict_is_clean(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (deploy/requirements.txt)")
    user = tmp_path / "user_code.py"
    user.write_text(USER)
    # the files of this tree (not an installed neuroq), a throwaway cache
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
                        "--cache-dir", str(tmp_path / "cache"), "--strict", "neuroq",
                        str(user)],
                       cwd=PKG, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MYPYPATH": str(PKG)})
    assert r.returncode == 0, r.stdout + r.stderr
    checked = len(list((PKG / "neuroq").glob("*.py"))) + 1  # the package + user_code.py
    assert f"Success: no issues found in {checked} source files" in r.stdout, r.stdout
