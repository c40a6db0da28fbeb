"""`pip install client/python` makes a package that works without the source
tree: the wheel builds, installs into a fresh virtualenv, imports from there
(not from client/python) and runs a real gsn job against the daemon.  Its
version is the C project's (the top CMakeLists.txt)."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import neuroq
from conftest import REPO, assert_gsn_sane, make_data

PKG = REPO / "client" / "python"


def cmake_version():
    m = re.search(r"project\(\s*neuroq\s+VERSION\s+([0-9.]+)",
                  (REPO / "CMakeLists.txt").read_text())
    assert m, "no project(neuroq VERSION ...) in CMakeLists.txt"
    return m.group(1)


def test_version_is_the_projects():
    assert neuroq.__version__ == cmake_version()


def _offline_build():
    """True when this interpreter can build the wheel itself (setuptools with
    bdist_wheel: setuptools >= 70.1, or an older one plus `wheel`)."""
    try:
        import setuptools
    except ImportError:
        return False
    v = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    if v < (61, 0):
        return False
    return v >= (70, 1) or importlib.util.find_spec("wheel") is not None


def build_wheel(tmp):
    """The wheel of a copy of client/python (the build leaves build/ and
    *.egg-info behind: not in the tree)."""
    src = tmp / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".mypy_cache"))
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(src)]
    if _offline_build():
        cmd.insert(4, "--no-build-isolation")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list(out.glob("neuroq-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(tmp, wheel):
    """A fresh virtualenv with the wheel installed; numpy, msgpack, pynng and
    tqdm come from this interpreter's site-packages (a .pth line after the
    venv's own, so the venv's neuroq comes first)."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install",
                        "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))
               and os.path.isdir(p)]
    (Path(site) / "zz_parent_site.pth").write_text("".join(p + "\n" for p in parents))
    return venv, py


CHILD = r"""
import importlib.metadata, json, sys
import numpy as np
import neuroq
url, data_path, out = sys.argv[1:4]
x = np.load(data_path)
with neuroq.Client(url, timeout=60) as c:
    hello = c.hello()
    res = neuroq.perform_gsn(x, {"wantshrinkage": 1}, client=c, device="cpu",
                             progress=False, timeout=300)
np.savez(out + ".npz", **{k: v for k, v in res.items() if isinstance(v, np.ndarray)})
json.dump({"file": neuroq.__file__, "version": neuroq.__version__,
           "dist_version": importlib.metadata.version("neuroq"),
           "daemon": hello.get("daemon"), "prefix": sys.prefix,
           "scalars": {k: v for k, v in res.items() if not isinstance(v, np.ndarray)}},
          open(out + ".json", "w"))
"""


def test_wheel_installs_and_runs_a_job(daemon, tmp_path):
    wheel = build_wheel(tmp_path)
    assert wheel.name == f"neuroq-{cmake_version()}-py3-none-any.whl"
    venv, py = make_venv(tmp_path, wheel)
    data = make_data(8, 20, 4, seed=3)
    np.save(tmp_path / "data.npy", data)
    work = tmp_path / "elsewhere"  # not the source tree, not its parent
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run([str(py), "-c", CHILD, daemon.url, str(tmp_path / "data.npy"),
                        str(tmp_path / "res")], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    info = json.loads((tmp_path / "res.json").read_text())
    installed = Path(info["file"]).resolve()
    assert installed.is_relative_to(venv.resolve()), info["file"]
    assert not installed.is_relative_to(REPO.resolve())
    assert (installed.parent / "py.typed").is_file()
    assert info["version"] == info["dist_version"] == info["daemon"] == cmake_version()
    res = dict(np.load(tmp_path / "res.npz"))
    res.update(info["scalars"])
    assert_gsn_sane(res, data)
