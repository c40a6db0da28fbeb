#!/usr/bin/env python3
"""The GPU device check: every GPU figure neuroq claims, in one run of under 8 minutes.

Run by bench/device_check.sh (which first unpacks the carried libraries); see bench/README.md,
"GPU: the device check". Parts, in order, each stopped at its time budget:

  env        nvidia-smi, nvcc, cmake, python and numpy versions
  build      use the carried build (--build) if its programs load, else cmake + build here
  kern_test  kern_cuda_test: every kernel op of the cuda backend against the cpu backend
  gsn_tests  tests/gsn's cuda-vs-cpu tests (pytest -m gpu)
  gsn_bench  neuroq-worker gsn on the device at N = 1000, 5000, 10000, 20000 (C = 100, T = 5),
             float64 and float32; the cpu backend on the same data where the budget allows
             (ratio, max relative difference, same selected shrink levels)
  spikesort  ss-run on a generated 384-channel, 60 s recording (tests/spikesort/gen_gt.py), on the
             device and (budget allowing) on the cpu; accuracy against the ground truth, and
             the host<->device traffic per second of recording with the modelled device bytes
             per batch (the result's counters: daemon/jobs/spikesort/README.md)

Writes OUT/device_check.json and OUT/device_check.txt (+ logs). Peak device memory: nvidia-smi
sampled every 100 ms, the peak during each run less the figure before it. Peak host memory:
the run's maxrss (wait4).

--dry-run goes through the same steps on the cpu backend at small sizes (the JSON has the same
keys; mode "dry-run"), for CI. Needs only python3 + numpy (+ msgpack, pytest for gsn_tests).
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = 1
STATUSES = ("pass", "fail", "skip", "error")

# name -> (real budget s, dry-run budget s)
BUDGETS = {
    "env": (20, 10),
    "build": (150, 20),
    "kern_test": (45, 30),
    "gsn_tests": (45, 60),
    "gsn_bench": (150, 60),
    "spikesort": (110, 90),
}
TOTAL_BUDGET = (470, 240)  # under 8 minutes with start-up and the copy back
# takes the time earlier parts left unused, as far as the later parts' budgets allow
ELASTIC = ("gsn_bench",)

PROGRAMS = {  # build-relative paths
    "worker": "daemon/neuroq-worker",
    "ss_run": "daemon/jobs/spikesort/ss-run",
    "kern_cuda_test": "kernels/kern_cuda_test",
    "kern_cpu_test": "kernels/kern_cpu_test",
}
CUDA_MODULE = "kernels/libnq_kern_cuda.so"


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def say(msg):
    print("[device_check %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---- device memory sampling


class MemSampler:
    """nvidia-smi --query-gpu=memory.used every 100 ms into (t, MiB) samples."""

    def __init__(self):
        self.samples = []
        self.proc = None
        self.note = None
        smi = shutil.which("nvidia-smi")
        if smi is None:
            self.note = "no nvidia-smi"
            return
        try:
            self.proc = subprocess.Popen(
                [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0",
                 "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError as e:
            self.note = "nvidia-smi: %s" % e
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.samples.append((time.monotonic(), float(line.strip())))
            except ValueError:
                pass

    def peak_during(self, t0, t1):
        """Peak MiB used in [t0, t1] less the last sample before t0 (None without samples)."""
        if self.proc is None:
            return None
        time.sleep(0.25)  # the sample after t1
        base = [m for t, m in self.samples if t < t0]
        during = [m for t, m in self.samples if t0 <= t <= t1 + 0.2]
        if not during:
            return None
        return max(during) - (base[-1] if base else 0.0)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ---- running programs with a time limit and their peak RSS


def run(cmd, timeout, log=None, env=None, cwd=None):
    """Runs cmd; returns dict(rc, time_s, maxrss_mib, timed_out, out) (out: the last 4000
    characters of stdout+stderr). Killed (its process group) at timeout."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as buf:
        try:
            p = subprocess.Popen(cmd, stdout=buf, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                 start_new_session=True)
        except OSError as e:
            return {"rc": 127, "time_s": 0.0, "maxrss_mib": None, "timed_out": False,
                    "out": str(e), "t0": t0, "t1": t0}
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        t1 = time.monotonic()
        buf.seek(0)
        out = buf.read().decode(errors="replace")
    if log is not None:
        with open(log, "a") as f:
            f.write("$ %s\n%s\n[exit %s after %.1f s%s]\n" % (
                " ".join(map(str, cmd)), out, p.returncode, t1 - t0,
                ", killed at the time budget" if timed_out else ""))
    return {"rc": p.returncode, "time_s": round(t1 - t0, 3), "maxrss_mib": round(ru.ru_maxrss / 1024, 1),
            "timed_out": timed_out, "out": out[-4000:], "t0": t0, "t1": t1}


# ---- the check


class Check:
    def __init__(self, args):
        self.args = args
        self.dry = args.dry_run
        self.out = pathlib.Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.t_start = time.monotonic()
        k = 1 if self.dry else 0
        self.total_budget = args.budget_s or TOTAL_BUDGET[k]
        self.budgets = {p: b[k] for p, b in BUDGETS.items()}
        self.device = "cpu" if self.dry else args.device
        self.mem = MemSampler()
        self.skipped = []
        self.build = None
        self.env = dict(os.environ)
        self.report = {
            "schema": SCHEMA, "mode": "dry-run" if self.dry else "device", "started": now_iso(),
            "device": self.device, "budget_s": self.total_budget, "commit": self.commit(),
            "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                     "python": platform.python_version()},
            "gpu": None, "parts": {}, "skipped": self.skipped,
        }

    def commit(self):
        try:
            r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                               text=True, timeout=5)
            return r.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            return None

    def left(self):
        return self.total_budget - (time.monotonic() - self.t_start)

    def skip(self, what, why):
        self.skipped.append("%s: %s" % (what, why))
        say("SKIPPED %s (%s)" % (what, why))

    def part(self, name, fn):
        order = list(BUDGETS)
        later = [p for p in order[order.index(name) + 1:] if p not in self.args.skip]
        own = self.budgets[name]
        if name in ELASTIC:
            own += max(0.0, self.left() - sum(self.budgets[p] for p in later) - own)
        budget = min(own, max(0.0, self.left()))
        rec = {"status": "skip", "time_s": 0.0, "budget_s": round(budget, 1), "note": ""}
        if name in self.args.skip:
            rec["note"] = "--skip %s" % name
            self.skip(name, rec["note"])
        elif budget < 3:
            rec["note"] = "no time left in the %d s budget" % self.total_budget
            self.skip(name, rec["note"])
        else:
            say("%s (budget %.0f s)" % (name, budget))
            t0 = time.monotonic()
            try:
                fn(rec, t0 + budget)
            except Exception as e:  # a broken part must not lose the others' figures
                rec["status"] = "error"
                rec["note"] = "%s: %s" % (type(e).__name__, e)
            rec["time_s"] = round(time.monotonic() - t0, 2)
            say("%s: %s in %.1f s %s" % (name, rec["status"], rec["time_s"], rec["note"]))
        self.report["parts"][name] = rec
        self.write()

    # -- env

    def p_env(self, rec, deadline):
        rec["status"] = "pass"
        vers = {}
        for k, cmd in (("nvcc", ["nvcc", "--version"]), ("cmake", ["cmake", "--version"])):
            exe = shutil.which(cmd[0]) or (
                "/usr/local/cuda/bin/nvcc" if k == "nvcc" and os.path.exists("/usr/local/cuda/bin/nvcc")
                else None)
            if exe is None:
                vers[k] = None
                continue
            r = run([exe] + cmd[1:], 10)
            lines = [ln for ln in r["out"].splitlines() if ln.strip()]
            vers[k] = (lines[-1] if k == "nvcc" else lines[0]) if lines else None
        import numpy
        vers["numpy"] = numpy.__version__
        rec["versions"] = vers
        smi = shutil.which("nvidia-smi")
        if smi:
            r = run([smi, "--query-gpu=name,memory.total,memory.used,driver_version",
                     "--format=csv,noheader,nounits"], 15)
            f = [x.strip() for x in r["out"].splitlines()[0].split(",")] if r["rc"] == 0 else []
            if len(f) == 4:
                self.report["gpu"] = {"name": f[0], "memory_total_mib": float(f[1]),
                                      "memory_used_mib_at_start": float(f[2]), "driver": f[3]}
        if self.report["gpu"] is None and not self.dry:
            rec["status"] = "fail"
            rec["note"] = "nvidia-smi found no GPU"

    # -- build

    def programs_ok(self, build):
        missing = [p for p in PROGRAMS.values() if not os.access(build / p, os.X_OK)]
        if not self.dry and not (build / CUDA_MODULE).exists():
            missing.append(CUDA_MODULE)
        if missing:
            return "missing: %s" % ", ".join(missing)
        bad = []
        for p in list(PROGRAMS.values()) + ([] if self.dry else [CUDA_MODULE]):
            r = run(["ldd", str(build / p)], 10) if shutil.which("ldd") else None
            if r is not None and "not found" in r["out"]:
                bad += sorted({ln.split()[0] for ln in r["out"].splitlines() if "not found" in ln})
        if bad:
            return "libraries not found: %s" % ", ".join(sorted(set(bad)))
        return None

    def p_build(self, rec, deadline):
        log = self.out / "build.log"
        if self.args.build:
            b = pathlib.Path(self.args.build).resolve()
            why = self.programs_ok(b)
            rec["carried"] = True
            if why is None:
                self.build = b
                rec.update(status="pass", build_dir=str(b), note="carried build")
                return
            rec["carried_problem"] = why
            say("carried build %s not usable (%s): building here" % (b, why))
        b = pathlib.Path(tempfile.gettempdir()) / "nq-devbuild"
        rec["build_dir"] = str(b)
        cuda = "OFF" if self.dry else "ON"
        r = run(["cmake", "-S", str(ROOT), "-B", str(b), "-DCMAKE_BUILD_TYPE=Release",
                 "-DNEUROQ_CUDA=" + cuda, "-DNEUROQ_WERROR=OFF"], deadline - time.monotonic(), log)
        if r["rc"] == 0:
            targets = ["neuroq-worker", "ss-run", "kern_cpu_test", "kern_cuda_test"]
            r = run(["cmake", "--build", str(b), "-j", str(os.cpu_count() or 4), "--target"] + targets,
                    deadline - time.monotonic(), log)
        if r["rc"] != 0:
            rec.update(status="fail", note="build failed%s (build.log)" % (
                ", killed at its budget" if r["timed_out"] else ""))
            return
        why = self.programs_ok(b)
        if why is not None:
            rec.update(status="fail", note=why)
            return
        self.build = b
        rec.update(status="pass", note="built here (Release, CUDA %s)" % cuda)

    def prog(self, key):
        return str(self.build / PROGRAMS[key])

    def worker_env(self):
        env = dict(self.env)
        env["NEUROQ_LIB_DIR"] = str(self.build / "kernels")
        env["NEUROQ_BUILD"] = str(self.build)
        return env

    # -- kernel conformance

    def p_kern_test(self, rec, deadline):
        if self.build is None:
            rec["note"] = "no build"
            self.skip("kern_test", rec["note"])
            return
        test = "kern_cpu_test" if self.dry else "kern_cuda_test"
        r = run([self.prog(test)], deadline - time.monotonic(), self.out / "kern_test.log",
                env=self.worker_env())
        rec["test"] = test
        rec["exit_code"] = r["rc"]
        rec["peak_device_mib"] = self.mem.peak_during(r["t0"], r["t1"])
        if r["rc"] == 0:
            rec["status"] = "pass"
        elif r["rc"] == 77:
            rec.update(status="skip" if self.dry else "fail", note="exit 77: no usable device")
        else:
            rec.update(status="fail", note="exit %s%s (kern_test.log)" % (
                r["rc"], ", killed at its budget" if r["timed_out"] else ""))

    # -- gsn cuda vs cpu tests

    def p_gsn_tests(self, rec, deadline):
        if self.build is None:
            rec["note"] = "no build"
            self.skip("gsn_tests", rec["note"])
            return
        rep = self.out / "gsn_tests.xml"
        r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                 "--junitxml", str(rep), str(ROOT / "tests" / "gsn")], deadline - time.monotonic(),
                self.out / "gsn_tests.log", env=self.worker_env())
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        try:
            import xml.etree.ElementTree as ET
            suite = ET.parse(rep).getroot()
            suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
            tests = int(suite.get("tests", 0))
            counts["failed"] = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            counts["skipped"] = int(suite.get("skipped", 0))
            counts["passed"] = tests - counts["failed"] - counts["skipped"]
            rep.unlink()
        except (OSError, Exception):
            pass
        rec.update(counts)
        rec["exit_code"] = r["rc"]
        if r["timed_out"]:
            rec.update(status="fail", note="killed at its budget (gsn_tests.log)")
        elif counts["failed"] or r["rc"] not in (0, 5):
            rec.update(status="fail", note="exit %s (gsn_tests.log)" % r["rc"])
        elif counts["passed"] == 0:
            rec.update(status="skip", note="no device: every cuda test skipped")
            if not self.dry:
                rec["status"] = "fail"
        else:
            rec["status"] = "pass"

    # -- gsn benchmark

    def gsn_run(self, data, device, deadline, returns):
        import msgpack
        import numpy as np
        d = pathlib.Path(tempfile.mkdtemp(prefix="nq-dc-gsn-"))
        try:
            (d / "in").mkdir()
            (d / "out").mkdir()
            (d / "params.mp").write_bytes(msgpack.packb({"returns": returns}, use_bin_type=True))
            np.save(d / "in" / "data.npy", data)
            env = self.worker_env()
            if device == "cpu" and self.cpu_blas_threads is not None:
                env["OPENBLAS_NUM_THREADS"] = str(self.cpu_blas_threads)
            r = run([self.prog("worker"), "run", "--type", "gsn", "--dir", str(d), "--device", device],
                    deadline - time.monotonic(), self.out / "gsn_bench.log", env=env)
            row = {"device": device, "wall_s": r["time_s"], "peak_host_mib": r["maxrss_mib"],
                   "peak_device_mib": self.mem.peak_during(r["t0"], r["t1"]) if device != "cpu" else None}
            if r["rc"] != 0:
                err = (d / "error").read_text() if (d / "error").exists() else r["out"][-500:]
                row.update(status="fail", note="killed at the time budget" if r["timed_out"]
                           else "exit %s: %s" % (r["rc"], err.strip()[:300]))
                return row, None
            res = json.loads((d / "out" / "result.json").read_text())
            out = {k: np.load(d / "out" / (k + ".npy")) for k in returns}
            row.update(status="pass", compute_s=res.get("time_s"),
                       levels=[res.get("shrinklevelN"), res.get("shrinklevelD"), res.get("numiters")])
            return row, out
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def p_gsn_bench(self, rec, deadline):
        import numpy as np
        if self.build is None:
            rec["note"] = "no build"
            self.skip("gsn_bench", rec["note"])
            return
        sys.path.insert(0, str(HERE))
        from gsn_bench import make_synthetic
        sizes = [int(x) for x in self.args.gsn_sizes.split(",")]
        cpu_max = self.args.cpu_ref_max_n
        c, t = self.args.conds, self.args.trials
        returns = ["cSb", "cNb"]
        # the recording for spikesort is made meanwhile on one core: the cpu reference leaves it
        # that core (OpenBLAS threads wait for the slowest); a dry run keeps the caller's setting
        self.cpu_blas_threads = None
        if not self.dry and "OPENBLAS_NUM_THREADS" not in self.env:
            self.cpu_blas_threads = max(1, (os.cpu_count() or 2) - 1)
        rec.update(C=c, T=t, sizes=sizes, returns=returns, runs=[], skipped=[],
                   cpu_blas_threads=self.cpu_blas_threads)
        last = {}  # (role, precision) -> (N, seconds): the next N's forecast (N^3)
        fails = 0
        for n in sizes:
            data64 = np.ascontiguousarray(make_synthetic(n, c, t))
            outs = {}
            # role "dev": the device under test; "ref": the cpu backend on the same data (in a
            # dry run the device is the cpu too: the same steps, and equal numbers expected)
            plan = [("dev", self.device, "float64"), ("dev", self.device, "float32")]
            if n <= cpu_max:
                plan.append(("ref", "cpu", "float64"))
            for role, dev, prec in plan:
                what = "gsn N=%d %s %s%s" % (n, prec, dev, " (reference)" if role == "ref" else "")
                left = deadline - time.monotonic()
                if (role, prec) in last:
                    n0, s0 = last[(role, prec)]
                    guess = s0 * (n / n0) ** 3
                    if guess > left:
                        why = "forecast %.0f s > %.0f s left (N^3 from N=%d: %.1f s)" % (guess, left, n0, s0)
                        rec["skipped"].append(what + ": " + why)
                        self.skip(what, why)
                        continue
                if left < 2:
                    rec["skipped"].append(what + ": no time left")
                    self.skip(what, "no time left")
                    continue
                data = data64 if prec == "float64" else data64.astype(np.float32)
                row, out = self.gsn_run(data, dev, deadline, returns)
                row.update(N=n, precision=prec, role=role)
                say("%s: %s wall %.2f s compute %s s peak device %s MiB" % (
                    what, row["status"], row["wall_s"], row.get("compute_s"), row.get("peak_device_mib")))
                if row["status"] == "pass":
                    last[(role, prec)] = (n, row["wall_s"])
                    outs[(role, prec)] = (row, out)
                elif "time budget" in row.get("note", ""):
                    row["status"] = "skip"
                    rec["skipped"].append(what + ": killed at the time budget")
                    self.skip(what, "killed at the time budget")
                else:
                    fails += 1
                rec["runs"].append(row)
            ref = outs.get(("ref", "float64"))
            for (role, prec), (row, out) in outs.items():
                if ref is None or role != "dev":
                    continue
                rel = max(float(np.abs(out[k] - ref[1][k]).max() / max(float(np.abs(ref[1][k]).max()), 1e-300))
                          for k in returns)
                same = row["levels"] == ref[0]["levels"]
                row["vs_cpu"] = {"cpu_wall_s": ref[0]["wall_s"],
                                 "speedup": round(ref[0]["wall_s"] / max(row["wall_s"], 1e-9), 2),
                                 "max_rel": rel, "same_levels": same}
                # tests/gsn's contract: the same selected levels; arrays to 1e-8 (float64) or
                # 1e-4 x max (float32; 1e-3 here for N up to 5000)
                tol = 1e-8 if prec == "float64" else 1e-3
                if rel > tol or not same:
                    row["status"] = "fail"
                    row["note"] = "differs from the cpu: max_rel %.1e (tolerance %.0e), levels %s vs %s" % (
                        rel, tol, row["levels"], ref[0]["levels"])
                    fails += 1
        done = [r for r in rec["runs"] if r["status"] == "pass"]
        rec["status"] = "fail" if fails else ("pass" if done else "skip")
        if fails:
            rec["note"] = "%d run(s) failed" % fails

    # -- spikesort benchmark

    def p_spikesort(self, rec, deadline):
        import numpy as np
        if self.build is None:
            rec["note"] = "no build"
            self.skip("spikesort", rec["note"])
            return
        sys.path.insert(0, str(ROOT / "tests" / "spikesort"))
        from gen_gt import FS, compare
        ch, units, secs = self.args.ss_channels, self.args.ss_units, self.args.ss_seconds
        rec.update(recording={"channels": ch, "units": units, "seconds": secs, "seed": 0,
                              "generator": "tests/spikesort/gen_gt.py"}, runs=[], skipped=[])
        tmp, rec_path = self.gen_dir, str(self.gen_dir / "rec.bin")
        try:
            gen = self.gen_wait(deadline)
            rec["recording"].update(gen)
            if gen["status"] != "pass":
                rec.update(status=gen["status"], note="generating the recording: " + gen["note"])
                if gen["status"] == "skip":
                    self.skip("spikesort", rec["note"])
                return
            gt = np.load(rec_path + ".gt.npz")
            gt_t, gt_l = gt["times"], gt["labels"]
            say("spikesort: %d ch x %g s generated in %.1f s (from the start of the check)" % (
                ch, secs, rec["recording"]["generate_s"]))
            plan = [self.device] + (["cpu"] if self.device != "cpu" else [])
            fails = 0
            for dev in plan:
                left = deadline - time.monotonic()
                what = "spikesort %d ch %g s on %s" % (ch, secs, dev)
                if left < 5:
                    rec["skipped"].append(what + ": no time left")
                    self.skip(what, "no time left")
                    continue
                outd = tmp / ("phy-" + dev.replace(":", ""))
                r = run([self.prog("ss_run"), "--recording", rec_path, "--n-channels", str(ch),
                         "--sample-rate", str(FS), "--probe", rec_path + ".probe.json", "--out", str(outd),
                         "--device", dev], left, self.out / "spikesort.log", env=self.worker_env())
                row = {"device": dev, "wall_s": r["time_s"], "peak_host_mib": r["maxrss_mib"],
                       "peak_device_mib": self.mem.peak_during(r["t0"], r["t1"]) if dev != "cpu" else None}
                if r["rc"] != 0:
                    if r["timed_out"]:
                        row.update(status="skip", note="killed at the time budget")
                        rec["skipped"].append(what + ": killed at the time budget")
                        self.skip(what, "killed at the time budget")
                    else:
                        row.update(status="fail", note="exit %s: %s" % (r["rc"], r["out"][-300:].strip()))
                        fails += 1
                    rec["runs"].append(row)
                    continue
                res = next(json.loads(ln) for ln in reversed(r["out"].splitlines())
                           if ln.startswith("{") and ln.rstrip().endswith("}"))
                acc = compare(gt_t, gt_l, np.load(outd / "spike_times.npy"),
                              np.load(outd / "spike_clusters.npy"), delta=int(0.0004 * FS))
                row.update(status="pass", result=res, x_realtime=res.get("x_realtime"),
                           well_detected=int(np.sum(acc >= 0.8)), gt_units=int(acc.size),
                           mean_accuracy=round(float(acc.mean()), 3))
                # host<->device traffic per second of recording (the backend's copy counters;
                # the cpu counts the bytes its upload/download calls would copy) and the
                # modelled device bytes of one batch, to hold against peak_device_mib
                mib = lambda k: round(res[k] / 2**20, 3) if isinstance(res.get(k), (int, float)) else None
                row["traffic"] = {"h2d_mib_per_s": mib("h2d_bytes_per_s"), "d2h_mib_per_s": mib("d2h_bytes_per_s"),
                                  "match_h2d_mib_per_s": mib("match_h2d_bytes_per_s"),
                                  "match_d2h_mib_per_s": mib("match_d2h_bytes_per_s"),
                                  "model_device_mib_per_batch": mib("device_bytes_per_batch")}
                say("%s: %.2fx real time, %d/%d units >= 0.8, peak device %s MiB" % (
                    what, row["x_realtime"] or 0, row["well_detected"], row["gt_units"],
                    row["peak_device_mib"]))
                rec["runs"].append(row)
            runs = {r["device"]: r for r in rec["runs"] if r["status"] == "pass"}
            if self.device in runs and "cpu" in runs and self.device != "cpu":
                runs[self.device]["speedup_vs_cpu"] = round(runs["cpu"]["wall_s"] / runs[self.device]["wall_s"], 2)
            rec["status"] = "fail" if fails else ("pass" if runs else "skip")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def gen_start(self):
        """Starts generating the spikesort recording in the background at the start of the check
        (a child on one core, one BLAS thread: its many small products only spin with more, 13 s
        instead of 87 s on a busy 2-core box), so that the part's budget is the sorting's."""
        self.gen_dir = pathlib.Path(tempfile.mkdtemp(prefix="nq-dc-ss-"))
        self.gen = None
        if "spikesort" in self.args.skip:
            return
        a = self.args
        env = dict(self.env, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        script = ("import sys, time; t = time.monotonic(); sys.path.insert(0, sys.argv[1]); import gen_gt; "
                  "gen_gt.generate(sys.argv[2], n_channels=int(sys.argv[3]), n_units=int(sys.argv[4]), "
                  "duration_s=float(sys.argv[5]), seed=0); print('generate_s %.2f' % (time.monotonic() - t))")
        self.gen_log = open(self.out / "spikesort.log", "a")
        self.gen = subprocess.Popen(
            [sys.executable, "-c", script, str(ROOT / "tests" / "spikesort"), str(self.gen_dir / "rec.bin"),
             str(a.ss_channels), str(a.ss_units), str(a.ss_seconds)], stdout=self.gen_log,
            stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def gen_wait(self, deadline):
        """{status, note, generate_s}: the background generation, waited for until deadline."""
        if self.gen is None:
            return {"status": "error", "note": "not started", "generate_s": None}
        while self.gen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.gen.poll() is None:
            os.killpg(self.gen.pid, signal.SIGKILL)
            self.gen.wait()
            return {"status": "skip", "note": "not done at the part's deadline", "generate_s": None}
        self.gen_log.flush()
        secs = None
        for ln in (self.out / "spikesort.log").read_text().splitlines():
            if ln.startswith("generate_s "):
                secs = float(ln.split()[1])
        if self.gen.returncode != 0 or secs is None:
            return {"status": "fail", "note": "exit %s (spikesort.log)" % self.gen.returncode, "generate_s": None}
        return {"status": "pass", "note": "", "generate_s": secs}

    def gen_stop(self):
        if self.gen is not None and self.gen.poll() is None:
            os.killpg(self.gen.pid, signal.SIGKILL)
            self.gen.wait()
        if self.gen is not None:
            self.gen_log.close()
        shutil.rmtree(self.gen_dir, ignore_errors=True)

    # -- output

    def write(self):
        self.report["elapsed_s"] = round(time.monotonic() - self.t_start, 1)
        parts = self.report["parts"]
        self.report["ok"] = bool(parts) and all(p["status"] in ("pass", "skip") for p in parts.values()) \
            and (self.dry or all(parts.get(k, {}).get("status") == "pass"
                                 for k in ("env", "build", "kern_test")))
        (self.out / "device_check.json").write_text(json.dumps(self.report, indent=1) + "\n")
        (self.out / "device_check.txt").write_text(self.summary())

    def summary(self):
        r = self.report
        g = r["gpu"]
        lines = ["neuroq device check (%s) %s, commit %s, %.0f s of %d s: %s" % (
            r["mode"], r["started"], (r["commit"] or "?")[:12], r["elapsed_s"], r["budget_s"],
            "OK" if r["ok"] else "NOT OK"),
            "gpu: %s" % ("%s, %.0f MiB, driver %s" % (g["name"], g["memory_total_mib"], g["driver"])
                         if g else "none"), ""]
        for name, p in r["parts"].items():
            lines.append("%-10s %-5s %6.1f s  %s" % (name, p["status"].upper(), p["time_s"], p.get("note", "")))
        gb = r["parts"].get("gsn_bench", {})
        if gb.get("runs"):
            lines += ["", "gsn (C = %s, T = %s): N precision device wall_s compute_s peak_dev_MiB "
                      "peak_host_MiB  vs cpu: speedup max_rel same_levels" % (gb["C"], gb["T"])]
            for x in gb["runs"]:
                v = x.get("vs_cpu") or {}
                lines.append("  %6d %-7s %-11s %8s %8s %8s %8s  %s %s %s %s" % (
                    x["N"], x["precision"], x["device"] + ("(ref)" if x.get("role") == "ref" else ""), fmt(x.get("wall_s")), fmt(x.get("compute_s")),
                    fmt(x.get("peak_device_mib"), "%.0f"), fmt(x.get("peak_host_mib"), "%.0f"),
                    fmt(v.get("speedup"), "%.1fx"), fmt(v.get("max_rel"), "%.1e"),
                    v.get("same_levels", "-"), x["status"] if x["status"] != "pass" else ""))
        ss = r["parts"].get("spikesort", {})
        if ss.get("runs"):
            rc = ss["recording"]
            lines += ["", "spikesort (%d ch, %d units, %g s, generated in %s s):" % (
                rc["channels"], rc["units"], rc["seconds"], rc.get("generate_s", "-"))]
            for x in ss["runs"]:
                lines.append("  %-7s %s wall %s s, %s x real time, %s/%s units >= 0.8, peak device %s MiB, "
                             "peak host %s MiB%s" % (
                                 x["device"], x["status"], fmt(x.get("wall_s")), fmt(x.get("x_realtime")),
                                 x.get("well_detected", "-"), x.get("gt_units", "-"),
                                 fmt(x.get("peak_device_mib"), "%.0f"), fmt(x.get("peak_host_mib"), "%.0f"),
                                 ", %.1fx the cpu" % x["speedup_vs_cpu"] if "speedup_vs_cpu" in x else ""))
                tr = x.get("traffic") or {}
                if tr:
                    lines.append("          traffic per s of recording: h2d %s MiB, d2h %s MiB (matching: %s, %s); "
                                 "model %s MiB of device memory per batch" % (
                                     fmt(tr.get("h2d_mib_per_s")), fmt(tr.get("d2h_mib_per_s")),
                                     fmt(tr.get("match_h2d_mib_per_s")), fmt(tr.get("match_d2h_mib_per_s")),
                                     fmt(tr.get("model_device_mib_per_batch"), "%.0f")))
        if r["skipped"]:
            lines += ["", "skipped:"] + ["  " + s for s in r["skipped"]]
        return "\n".join(lines) + "\n"

    def main(self):
        self.gen_start()
        try:
            return self.run_parts()
        finally:
            self.gen_stop()

    def run_parts(self):
        self.part("env", self.p_env)
        self.part("build", self.p_build)
        self.part("kern_test", self.p_kern_test)
        self.part("gsn_tests", self.p_gsn_tests)
        self.part("gsn_bench", self.p_gsn_bench)
        self.part("spikesort", self.p_spikesort)
        self.mem.stop()
        self.write()
        sys.stdout.write("\n" + self.summary())
        return 0 if self.report["ok"] else 1


def fmt(x, f="%.3f"):
    return "-" if x is None else (f % x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the cpu backend, small sizes")
    ap.add_argument("--out", default=os.environ.get("OUT") or "device_check_out",
                    help="folder for device_check.json/.txt and logs (default $OUT)")
    ap.add_argument("--build", help="a build to use (carried); without it, or if its programs do "
                    "not load, cmake builds one in /tmp/nq-devbuild")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--budget-s", type=float, help="whole-run budget (default 470; dry run 240)")
    ap.add_argument("--skip", action="append", default=[], choices=sorted(BUDGETS))
    ap.add_argument("--gsn-sizes", help="default 1000,5000,10000,20000 (dry run 60,120)")
    ap.add_argument("--conds", type=int, help="default 100 (dry run 20)")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--cpu-ref-max-n", type=int, help="cpu reference up to this N (default 5000)")
    ap.add_argument("--ss-channels", type=int, help="default 384 (dry run 32)")
    ap.add_argument("--ss-units", type=int, help="default 96 (dry run 6)")
    ap.add_argument("--ss-seconds", type=float, help="default 60 (dry run 10)")
    a = ap.parse_args()
    dry = a.dry_run
    a.gsn_sizes = a.gsn_sizes or ("60,120" if dry else "1000,5000,10000,20000")
    a.conds = a.conds or (20 if dry else 100)
    a.cpu_ref_max_n = a.cpu_ref_max_n or (10**9 if dry else 5000)
    a.ss_channels = a.ss_channels or (32 if dry else 384)
    a.ss_units = a.ss_units or (6 if dry else 96)
    a.ss_seconds = a.ss_seconds or (10.0 if dry else 60.0)
    return Check(a).main()


if __name__ == "__main__":
    sys.exit(main())
