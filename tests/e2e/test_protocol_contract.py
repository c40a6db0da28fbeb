"""proto/PROTOCOL.md against the daemon (issue 12, "PROTOCOL.md matches the
daemon"): each passage a client author relies on, checked over the wire with
raw requests (conftest's raw_call decodes every reply with msgpack's strict
`raw=False`, so a reply that is not UTF-8 fails the test that got it).

Some checks read PROTOCOL.md itself (the §5 op table's optional/required
marks, the job-map table, the logs example), so the page and the daemon
cannot drift apart unnoticed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import (LONG_JOB, NEUROQD, REPO, Daemon, Frozen, _need_binaries, _reap_workers,
                      _state_dir, discard, make_data, pack, raw_call, wait_all, wait_state)
from conftest import wire_array as arr
from neuroq import errors

DOC = (REPO / "proto" / "PROTOCOL.md").read_text()
E = errors.CODES
TINY = (3, 10, 2)


@pytest.fixture(scope="module")
def d():
    _need_binaries()
    dm = Daemon(_state_dir(), cpu_slots=1)
    dm.start()
    yield dm
    alive = dm.alive()
    discard(dm)
    assert alive, "neuroqd died during the protocol tests"


@pytest.fixture(scope="module")
def done_id(d):
    """A DONE gsn job of the module's daemon."""
    with d.client() as c:
        jid = c.submit("gsn", inputs={"data": make_data(*TINY)}).id
        assert wait_all(c, [jid])[jid]["state"] == "DONE"
    return jid


def call(d, **m):
    return raw_call(d, pack({"v": 1, **m}))


def assert_error(reply, name, *words):
    assert reply is not None, "no reply"
    assert reply["ok"] is False, reply
    assert reply["error"] == name, reply
    assert reply["code"] == E[name], reply
    for w in words:
        assert w in reply["message"], reply


def gsn_submit(**over):
    m = {"op": "submit", "type": "gsn", "inputs": {"data": arr(make_data(*TINY))},
         "device": "cpu"}
    m.update(over)
    return m


# ---- §2: strings are UTF-8; nil is never absent


def latin1(body: bytes) -> bytes:
    """Turns every 'é' (c3 a9) of a packed message into the same two bytes
    that are not UTF-8 ('\\xe9' then '!'): same lengths, invalid strs."""
    assert b"\xc3\xa9" in body
    return body.replace(b"\xc3\xa9", b"\xe9!")


@pytest.mark.parametrize("where, req", [
    ("op", {"v": 1, "op": "hell\u00e9"}),
    ("unknown key", {"v": 1, "op": "hello", "k\u00e9y": 1}),
    ("type", {"v": 1, **gsn_submit(type="gs\u00e9")}),
    ("device", {"v": 1, **gsn_submit(device="cuda\u00e9")}),
    ("idem", {"v": 1, **gsn_submit(idem="key-\u00e9")}),
    ("params key", {"v": 1, **gsn_submit(params={"p\u00e9": 1})}),
    ("params value", {"v": 1, **gsn_submit(params={"uneven": "fast\u00e9"})}),
    ("inputs key", {"v": 1, **gsn_submit(inputs={"d\u00e9": arr(np.zeros(2))})}),
    ("dtype", {"v": 1, "op": "submit", "type": "gsn",
               "inputs": {"data": {"dtype": "<f\u00e9", "shape": [0], "data": b""}}}),
    ("names", {"v": 1, "op": "result", "id": 1, "names": ["c\u00e9N"]}),
    ("list state", {"v": 1, "op": "list", "state": "DON\u00e9"}),
])
def test_invalid_utf8_is_eproto_and_not_echoed(d, where, req):
    """A str that is not UTF-8, anywhere, is EPROTO before any op runs; the
    reply names the byte offset, never the bytes (raw_call decodes it
    strictly)."""
    rep = raw_call(d, latin1(pack(req)))
    assert_error(rep, "EPROTO", "not valid UTF-8")
    assert "\ufffd" not in rep["message"] and "!" not in rep["message"], rep


def test_replies_are_utf8_when_a_message_cuts_a_character(d):
    """Error messages quote a request's strings cut to 32 or 64 bytes; a cut
    inside a character must still give UTF-8 (U+FFFD at the cut)."""
    op = "a" + "\u00e9" * 40  # the quote's 32-byte cut falls inside an 'é'
    rep = call(d, op=op)  # raw_call decodes strictly: raises on bad UTF-8
    assert_error(rep, "EBADOP", "'a" + "\u00e9" * 15 + "\ufffd'")
    rep = call(d, **gsn_submit(type="t" + "\u00e9" * 40))  # cut at 64 bytes
    assert_error(rep, "EBADTYPE", "'t" + "\u00e9" * 31 + "\ufffd'")


def test_nil_is_not_absent(d, done_id):
    """nil for a request field is EBADPARAM, `result`'s `names` too (it was
    once taken for absent); leaving a field out gives its default."""
    rep = call(d, op="result", id=done_id, names=None)
    assert_error(rep, "EBADPARAM", "names", "nil")
    rep = call(d, op="result", id=done_id)
    assert rep["ok"] is True and {"cN", "shrinklevelN"} <= set(rep["outputs"])
    assert_error(call(d, op="status", id=None), "EBADPARAM", "id")
    assert_error(call(d, op="list", limit=None), "EBADPARAM", "limit")
    assert_error(call(d, op="list", all_users=None), "EBADPARAM", "all_users")
    for field in ("device", "priority", "idem", "umask", "time_limit_s", "params", "inputs"):
        assert_error(call(d, **gsn_submit(**{field: None})), "EBADPARAM", field)
    # inside params the job type decides: gsn's nil is the default (GSN 1.2's
    # None), spikesort's is refused
    rep = call(d, **gsn_submit(params={"uneven": None, "wantshrinkage": None,
                                       "returns": None, "shrinklevels": None}))
    assert rep["ok"] is True, rep
    rep = call(d, op="submit", type="spikesort",
               params={"recording": "/nonexistent.bin", "n_channels": None,
                       "sample_rate": 30000})
    assert_error(rep, "EBADPARAM", "n_channels", "nil")


# ---- §5: which request fields are optional


def op_table():
    """{op: ({required fields}, {optional fields})} from §5's op table: a
    field is optional when its description says "optional"."""
    sec = DOC.split("## 5. Ops", 1)[1].split("### Job map", 1)[0]
    ops = {}
    for line in sec.splitlines():
        m = re.match(r"\| `(\w+)` \| (.*?) \| .* \|$", line)
        if not m:
            continue
        req, opt = set(), set()
        cell = m.group(2)
        if cell.strip() != "—":
            # `name` type (note), `name` type (note), ...: split at the
            # commas outside parentheses
            depth, part, parts = 0, "", []
            for ch in cell:
                depth += ch == "("
                depth -= ch == ")"
                if ch == "," and depth == 0:
                    parts.append(part)
                    part = ""
                else:
                    part += ch
            parts.append(part)
            for p in parts:
                f = re.match(r"\s*`(\w+)`", p)
                assert f, (m.group(1), p)
                (opt if "optional" in p else req).add(f.group(1))
        ops[m.group(1)] = (req, opt)
    return ops


def test_op_table_marks_each_field(d, done_id):
    """Every request field of §5's table: leaving out a required one is an
    error that names it; leaving out an optional one is not (with every
    other field given)."""
    ops = op_table()
    assert set(ops) == {"hello", "submit", "status", "list", "cancel", "result",
                        "devices", "logs", "queue", "describe", "reserve"}, ops
    # a full request of each op, every field given
    full = {
        "hello": {}, "devices": {}, "queue": {}, "describe": {"type": "gsn"},
        "reserve": {"bytes": 4 << 20},
        "submit": {"type": "gsn", "params": {"uneven": "fast"},
                   "inputs": {"data": arr(make_data(*TINY, seed=5))}, "device": "cpu",
                   "priority": 0, "idem": "", "umask": 0o022, "time_limit_s": 600},
        "status": {"id": done_id}, "cancel": {"id": done_id}, "logs": {"id": done_id},
        "result": {"id": done_id, "names": ["cN"]},
        "list": {"state": "DONE", "all_users": False, "limit": 5},
    }
    for op, (req, opt) in ops.items():
        assert req | opt == set(full[op]), (op, req, opt)
        assert call(d, op=op, **full[op])["ok"] is True, op
        for f in sorted(req):
            m = {k: v for k, v in full[op].items() if k != f}
            rep = call(d, op=op, **m)
            assert rep["ok"] is False and f in rep["message"], (op, f, rep)
        for f in sorted(opt):
            m = {k: v for k, v in full[op].items() if k != f}
            rep = call(d, op=op, **m)
            if op == "submit" and f == "inputs":
                # the protocol's default {} reaches the job type, which
                # needs its input 'data': its error, not the field's
                assert_error(rep, "EBADARRAY", "input 'data' is required")
                continue
            assert rep["ok"] is True, (op, f, rep)
    # the envelope's two
    assert_error(raw_call(d, pack({"op": "hello"})), "EVERSION", "v")
    assert_error(raw_call(d, pack({"v": 1})), "EBADOP", "op")


# ---- §5 job map, status, cancel


def job_map_fields():
    sec = DOC.split("### Job map", 1)[1].split("###", 1)[0]
    fields = set()
    for line in sec.splitlines():
        m = re.match(r"\| (`[^|]*`) \|", line)
        if m:
            fields |= set(re.findall(r"`(\w+)`", m.group(1)))
    return fields


def test_job_map_table_is_the_status_reply(d, done_id):
    job = call(d, op="status", id=done_id)["job"]
    assert job_map_fields() == set(job), (job_map_fields() ^ set(job))
    assert job["eta_s"] == 0  # final


def test_cancel_requested_only_while_a_stop_is_pending(daemon_factory):
    """`cancel_requested` is true from the cancel of a RUNNING job until it
    stopped; a final job says false (the job map table's meaning)."""
    d = daemon_factory()
    with d.client() as c:
        run = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=1)}).id
        frozen = Frozen(d, c, run)  # it cannot act on SIGTERM yet
        queued = c.submit("gsn", inputs={"data": make_data(*TINY)}).id
        try:
            assert c.cancel(run) == "RUNNING"
            j = c.status(run)
            assert j["state"] == "RUNNING" and j["cancel_requested"] is True
            # a queued job ends at once, with nothing pending
            assert c.cancel(queued) == "CANCELED"
            j = c.status(queued)
            assert j["cancel_requested"] is False and j["error_code"] == E["ECANCELED"]
        finally:
            frozen.thaw()
        j = wait_state(c, run, ("CANCELED",), timeout=60)
        assert j["cancel_requested"] is False and j["error_code"] == E["ECANCELED"]
        listed = {x["id"]: x for x in c.jobs()}
        assert listed[run]["cancel_requested"] is False
        # §6: a job's ECANCELED is its error_code, never a reply's code
        rep = call(d, op="result", id=run)
        assert_error(rep, "ESTATE", "CANCELED")
        assert call(d, op="cancel", id=run) == {"v": 1, "ok": True, "state": "CANCELED"}


# ---- §5 submit: devices, dtypes, the examples, idempotency


def test_device_names(d):
    """EBADDEVICE: not a device name; ENODEV: a device name this server has
    no device for (this daemon: the cpu only)."""
    for bad in ("tpu", "gpu", "CUDA:0", "cuda:", "cuda:x", ""):
        assert_error(call(d, **gsn_submit(device=bad)), "EBADDEVICE", "device")
    for absent in ("cuda", "cuda:0", "cuda:7"):
        assert_error(call(d, **gsn_submit(device=absent)), "ENODEV", absent,
                     "on this server")
    assert call(d, **gsn_submit(device="auto"))["ok"] is True


def test_queued_job_whose_device_went_away_fails_enodev(daemon_factory):
    """§6: jobs queued (and one running) for cuda:0 when the daemon restarts
    without that GPU FAIL with error_code ENODEV (the test GPU is a fake
    device, tests/e2e/test_multidevice.py)."""
    d = daemon_factory(devices="cpu,fake:0:8GiB", conf={"gpu_slots": 1})
    with d.client() as c:
        run = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=6)}, device="cuda:0").id
        frozen = Frozen(d, c, run)
        queued = c.submit("gsn", inputs={"data": make_data(*TINY)}, device="cuda:0").id
        assert c.status(queued)["state"] == "QUEUED"
    d.kill()
    frozen.thaw()
    _reap_workers(d)
    d.devices = "cpu"
    d.start()
    with d.client() as c:
        for jid in (run, queued):
            j = c.status(jid)
            assert (j["state"], j["error_code"]) == ("FAILED", E["ENODEV"]), j
            assert "device cuda:0" in j["error"], j


def test_doc_submit_and_result_examples(d):
    """§5's submit example as written (data [2, 3, 4]) and its result
    example: cN is units x units = [2, 2], 32 bytes."""
    data = make_data(2, 3, 4, seed=9, rank=1)
    rep = call(d, op="submit", type="gsn",
               params={"wantshrinkage": True, "shrinklevels": [0.0, 0.5, 1.0],
                       "returns": ["cN", "cS"], "uneven": "fast"},
               inputs={"data": arr(data)}, device="auto", priority=0,
               idem="doc-example-" + str(time.time()))
    assert rep["ok"] is True and rep["existing"] is False and rep["time_limit_s"] == 600
    with d.client() as c:
        assert wait_all(c, [rep["id"]])[rep["id"]]["state"] == "DONE"
    res = call(d, op="result", id=rep["id"], names=["cN", "shrinklevelN"])
    assert set(res["outputs"]) == {"cN", "shrinklevelN"}
    cn = res["outputs"]["cN"]
    assert cn["dtype"] == "<f8" and cn["shape"] == [2, 2] and len(cn["data"]) == 32
    assert isinstance(res["outputs"]["shrinklevelN"], float)
    m = re.search(r'"cN": \{ "dtype": "<f8", "shape": \[(\d+), (\d+)\], "data": <bin (\d+) bytes>',
                  DOC)
    assert m and tuple(map(int, m.groups())) == (2, 2, 32), "the doc's result example"


def test_gsn_data_float32_gives_float32(d):
    """gsn's `data` may be `<f8` or `<f4` (§5 submit); float32 data gives
    float32 arrays (the Python client's float32 policy)."""
    data = make_data(*TINY, seed=3).astype("<f4")
    rep = call(d, **gsn_submit(inputs={"data": arr(data)}))
    assert rep["ok"] is True
    with d.client() as c:
        assert wait_all(c, [rep["id"]])[rep["id"]]["state"] == "DONE"
    out = call(d, op="result", id=rep["id"], names=["cN", "mnN"])["outputs"]
    assert out["cN"]["dtype"] == out["mnN"]["dtype"] == "<f4"
    for bad in ("<i4", "|u1"):
        x = np.zeros(TINY, dtype=bad)
        assert_error(call(d, **gsn_submit(inputs={"data": arr(x)})), "EBADARRAY",
                     "float64 or float32")


def test_idempotency_matches_the_key_alone_after_validation(d):
    """§7: with the same `idem`, a second submit that differs in every
    other way returns the first job (the key alone is matched), but only once
    it validated: an invalid one gets its own error."""
    key = "idem-contract-" + str(time.time())
    a = call(d, **gsn_submit(idem=key))
    assert a["ok"] is True and a["existing"] is False
    b = call(d, **gsn_submit(idem=key, params={"wantshrinkage": False}, priority=7,
                             inputs={"data": arr(make_data(5, 12, 3, seed=8))}))
    assert b == {"v": 1, "ok": True, "id": a["id"], "existing": True}
    assert_error(call(d, **gsn_submit(idem=key, params={"nosuch": 1})), "EBADPARAM", "nosuch")
    assert_error(call(d, **gsn_submit(idem=key, device="tpu")), "EBADDEVICE")
    with d.client() as c:
        j = c.status(a["id"])
    assert j["priority"] == 0  # the first submit's, not the resend's


# ---- §5 logs


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ attempt=\d+ \S")


def test_logs_format_is_the_documented_one(d, done_id):
    text = call(d, op="logs", id=done_id)["text"]
    lines = text.splitlines()
    assert lines and text.endswith("\n")
    assert all(LOG_LINE.match(x) for x in lines), lines
    assert any(" start type=gsn device=cpu" in x for x in lines), lines
    sec = DOC.split("### logs", 1)[1].split("###", 1)[0]
    m = re.search(r'"text": "((?:[^"\\]|\\.)*)"', sec)
    assert m, "no logs example"
    doc_lines = m.group(1).encode().decode("unicode_escape").splitlines()
    assert doc_lines and all(LOG_LINE.match(x) for x in doc_lines), doc_lines


# ---- §6: job error codes vs reply codes; a path gone after submit


def test_recording_removed_after_submit_fails_the_job_with_eio(daemon_factory, tmp_path):
    """A spikesort recording that passed the submit-time check and is gone
    when the job runs: the job FAILS with error_code EIO (not EBADPARAM: the
    request was valid); `result` of it is ESTATE naming EIO."""
    sys.path.insert(0, str(REPO / "tests" / "spikesort"))
    from gen_gt import FS, generate
    rec = tmp_path / "rec.bin"
    generate(str(rec), n_channels=8, n_units=3, duration_s=2.0, seed=1)
    d = daemon_factory()
    with d.client() as c:
        blocker = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=2)}).id
        frozen = Frozen(d, c, blocker)  # holds the one cpu slot
        try:
            rep = call(d, op="submit", type="spikesort",
                       params={"recording": str(rec), "n_channels": 8, "sample_rate": FS},
                       device="cpu")
            assert rep["ok"] is True, rep
            rec.unlink()
            c.cancel(blocker)
        finally:
            frozen.thaw()
        j = wait_all(c, [rep["id"], blocker])[rep["id"]]
    assert j["state"] == "FAILED", j
    assert j["error_code"] == E["EIO"], j
    assert "recording" in j["error"] and str(rec) in j["error"], j
    assert_error(call(d, op="result", id=rep["id"]), "ESTATE", "FAILED", "EIO")
    # and at submit, a missing recording is the request's fault
    rep = call(d, op="submit", type="spikesort",
               params={"recording": str(rec), "n_channels": 8, "sample_rate": FS})
    assert_error(rep, "EBADPARAM", "recording", str(rec))


# ---- §1: socket_mode


def test_socket_mode_default_and_applied(d, tmp_path):
    """The daemon as root: 0660 on its control and events sockets (the
    tests run as root); a user daemon, also with its sockets in its own
    /run/user/UID, defaults to 0600 (--print-config shows the setting)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a daemon as root, and one as nobody)")
    for url in (d.url, d.events):
        mode = stat.S_IMODE(os.stat(url[len("ipc://"):]).st_mode)
        assert mode == 0o660, (url, oct(mode))
    # the binary where nobody can run it (the build tree may be 0700)
    tmp = Path(tempfile.mkdtemp(prefix="nq-mode-", dir="/tmp"))
    try:
        os.chmod(tmp, 0o755)
        exe = tmp / "neuroqd"
        shutil.copy2(NEUROQD, exe)
        os.chmod(exe, 0o755)
        for who, env, want in (
                ("nobody", {"XDG_RUNTIME_DIR": "/run/user/65534"}, "0600"),
                ("nobody", {}, "0660"),  # no runtime dir: /run/neuroq, a service's
                (None, {"XDG_RUNTIME_DIR": "/run/user/0"}, "0660")):
            r = subprocess.run([str(exe), "--print-config"], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", **env}, user=who, timeout=30,
                               cwd="/")
            assert r.returncode == 0, r.stderr
            assert f"\nsocket_mode = {want}\n" in r.stdout, (who, env, r.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the Python client's queue()


def test_python_client_queue(daemon_factory):
    d = daemon_factory()
    with d.client() as c:
        run = c.submit("gsn", inputs={"data": make_data(*LONG_JOB, seed=4)}).id
        frozen = Frozen(d, c, run)
        try:
            waiting = c.submit("gsn", inputs={"data": make_data(*TINY)}).id
            q = c.queue()
            raw = raw_call(d, pack({"v": 1, "op": "queue"}))
            assert set(q) == set(raw) - {"v", "ok"}
            assert q["admin"] is True and q["draining"] is False and "others" not in q
            assert [j["id"] for j in q["running"]] == [run]
            [w] = q["queue"]
            assert (w["id"], w["position"], w["reason"]) == (waiting, 1, "no free slot on cpu")
            assert q["queue_total"] == 1
            [cpu] = q["devices"]
            assert cpu["name"] == "cpu" and cpu["running_count"] == 1
        finally:
            frozen.thaw()
        c.cancel(run)
        wait_all(c, [run, waiting])
        q = c.queue()
        assert q["running"] == [] and q["queue"] == [] and q["queue_total"] == 0
        assert {run, waiting} <= {j["id"] for j in q["recent"]}
