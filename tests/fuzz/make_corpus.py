#!/usr/bin/env python3
"""Regenerates the seed corpus in corpus/ (run by hand; the files are
committed). valid-*: well-formed requests/replies/events from PROTOCOL.md;
bad-*: messages nq_decode must reject. Needs the msgpack and numpy modules."""
import os
import struct
import sys

import msgpack
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def arr(a):
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def job(i, state="RUNNING"):
    return {"id": i, "type": "gsn", "state": state, "owner": 1000,
            "priority": 0, "device_req": "auto", "device": "cuda:0",
            "attempts": 1, "progress": 0.4, "stage": "shrinkage",
            "submitted": 1763900000.5, "started": 1763900001.0,
            "finished": 0.0, "est_host_bytes": 1 << 20,
            "est_device_bytes": 1 << 22, "error_code": 0, "error": ""}


def main():
    os.makedirs(OUT, exist_ok=True)
    data = np.arange(24, dtype="<f8").reshape(2, 3, 4)
    data[0, 0, 0] = np.nan
    valid = {
        "hello": {"v": 1, "op": "hello"},
        "submit": {"v": 1, "op": "submit", "type": "gsn",
                   "params": {"wantshrinkage": True,
                              "shrinklevels": [0.0, 0.5, 1.0],
                              "returns": ["cN", "cS"], "uneven": "fast"},
                   "inputs": {"data": arr(data)}, "device": "auto",
                   "priority": 0, "idem": "7f1c2e9a-run-42"},
        "submit-every-dtype": {
            "v": 1, "op": "submit", "type": "gsn", "params": {},
            "inputs": {n: arr(np.arange(6).astype(t).reshape(2, 3))
                       for n, t in [("f8", "<f8"), ("f4", "<f4"),
                                    ("i2", "<i2"), ("i4", "<i4"),
                                    ("i8", "<i8"), ("u1", "|u1")]}
            | {"b1": arr(np.array([True, False])),
               "scalar": arr(np.array(2.5)),
               "empty": arr(np.zeros((0, 3)))},
            "device": "cuda:1", "priority": -100},
        "status": {"v": 1, "op": "status", "id": 42},
        "list": {"v": 1, "op": "list", "state": "RUNNING",
                 "all_users": False, "limit": 100},
        "cancel": {"v": 1, "op": "cancel", "id": 42},
        "result": {"v": 1, "op": "result", "id": 42, "names": ["cN"]},
        "devices": {"v": 1, "op": "devices"},
        "logs": {"v": 1, "op": "logs", "id": 42},
        "describe": {"v": 1, "op": "describe"},
        "describe-type": {"v": 1, "op": "describe", "type": "gsn"},
        "reply-describe": {"v": 1, "ok": True, "types": [{
            "name": "gsn", "summary": "GSN", "nil": "default",
            "symbols": {"N": "units", "C": "conditions", "T": "trials"},
            "params": [{"name": "wantshrinkage", "type": "bool",
                        "default": True, "doc": "shrinkage"},
                       {"name": "shrinklevels", "type": "[float]",
                        "default_text": "numpy.linspace(0, 1, 51)",
                        "min": 0.0, "max": 1.0, "min_items": 1,
                        "max_items": 100000, "doc": "levels"}],
            "inputs": [{"name": "data", "dtypes": ["<f8", "<f4"],
                        "shape": ["N", "C", "T"], "required": True,
                        "doc": "responses"}],
            "outputs": [{"name": "mnN", "type": "array",
                         "dtypes": ["<f8", "<f4"], "shape": [1, "N"],
                         "when": "always", "doc": "mean"}]}]},
        "queue": {"v": 1, "op": "queue"},
        "reply-hello": {"v": 1, "ok": True, "version": 1,
                        "daemon": "0.1.0", "uid": 1000,
                        "job_types": ["gsn"]},
        "reply-submit": {"v": 1, "ok": True, "id": 42, "existing": False},
        "reply-status": {"v": 1, "ok": True, "job": job(42)},
        "reply-list": {"v": 1, "ok": True,
                       "jobs": [job(41, "DONE"), job(42)]},
        "reply-cancel": {"v": 1, "ok": True, "state": "CANCELED"},
        "reply-result": {"v": 1, "ok": True,
                         "outputs": {"cN": arr(np.eye(3)),
                                     "shrinklevelN": 0.02,
                                     "numiters": 3}},
        "reply-devices": {"v": 1, "ok": True, "devices": [
            {"name": "cpu", "kind": "cpu", "mem_total": 1 << 36,
             "mem_free": 1 << 35, "mem_reserved": 0, "slots": 2,
             "running": []},
            {"name": "cuda:0", "kind": "cuda", "mem_total": 80 << 30,
             "mem_free": 70 << 30, "mem_reserved": 1 << 30, "slots": 1,
             "running": [42]}]},
        "reply-logs": {"v": 1, "ok": True, "text": "started\nstage=svd\n"},
        "reply-queue": {
            "v": 1, "ok": True, "now": 1763900030.2, "draining": False,
            "admin": False,
            "devices": [{"name": "cpu", "kind": "cpu",
                         "mem_total": 1 << 36, "capacity": 60 << 30,
                         "mem_reserved": 262221152, "slots": 1,
                         "running_count": 1}],
            "running": [],
            "queue": [{"id": 43, "type": "gsn", "state": "QUEUED",
                       "owner": 1000, "priority": 0, "device": "",
                       "progress": 0.0, "stage": "", "eta_s": -1,
                       "elapsed_s": 0.0, "submitted": 1763900020.1,
                       "started": 0.0, "finished": 0.0, "error_code": 0,
                       "position": 2, "reason": "no free slot on cpu",
                       "reason_device": "cpu"}],
            "queue_total": 3, "recent": [job(40, "DONE")],
            "others": {"queued": 2, "running": 1}},
        "reply-error": {"v": 1, "ok": False, "code": 6,
                        "error": "EBADPARAM",
                        "message": "parameter 'priority' must be an "
                                   "integer, got float"},
        "event": {"id": 42, "state": "RUNNING", "progress": 0.5,
                  "stage": "svd", "eta_s": 12.5},
        "scalars": [None, True, False, 0, -1, 127, -33, 255, 65536,
                    2**63 - 1, -2**63, 0.1, float("inf"), "", "é",
                    b"\x00\x01"],
    }
    for name, obj in valid.items():
        write("valid-" + name, pack(obj))

    sub = pack(valid["submit"])
    bad = {
        "truncated-submit": sub[:len(sub) // 2],
        "truncated-in-array-data": sub[:-5],
        "array32-huge": b"\xdd\xff\xff\xff\xff",
        "map32-huge": b"\xdf\xff\xff\xff\xff",
        "str32-huge": b"\xdb\xff\xff\xff\xff",
        "bin32-huge": b"\xc6\xff\xff\xff\xff",
        "map16-short": b"\xde\x00\x03\xa0\xc0\xa0\xc0\xa0",
        "depth17": b"\x91" * 17 + b"\xc0",
        "depth16-ok": b"\x91" * 16 + b"\xc0",
        "int-key": pack({1: "x"}),
        "nil-key": b"\x81\xc0\xc0",
        "ext": b"\x81\xa1k\xd4\x01\x00",
        "ext8": b"\xc7\x01\x05\x00",
        "timestamp": b"\xd6\xff\x00\x00\x00\x00",
        "trailing": pack({"v": 1, "op": "hello"}) + b"\xc0",
        "reserved-c1": b"\xc1",
        "empty": b"",
        "str-nul": pack({"v": 1, "op": "hel\x00lo"}),
        # strs must be UTF-8 (PROTOCOL.md §2): keys, values, dtypes
        "str-latin1": b"\x82\xa1v\x01\xa2op\xa5h\xe9llo",
        "key-latin1": b"\x81\xa3k\xe9y\x01",
        "str-overlong": b"\x81\xa1k\xa2\xc0\xaf",
        "str-surrogate": b"\x81\xa1k\xa3\xed\xa0\x80",
        "str-cut-char": b"\x81\xa1k\xa2\xe2\x82",
        "array-dtype-latin1": b"\x81\xa1x\x83\xa5dtype\xa3\xe9f8"
                              b"\xa5shape\x90\xa4data\xc4\x00",
        "dup-key": b"\x82\xa1v\x01\xa1v\x02",
        "uint64-big": b"\xcf" + struct.pack(">Q", 2**64 - 1),
        "array-short-data": pack({"x": {"dtype": "<f8", "shape": [3, 4],
                                        "data": bytes(95)}}),
        "array-long-data": pack({"x": {"dtype": "<f8", "shape": [2],
                                       "data": bytes(17)}}),
        "array-bad-dtype": pack({"x": {"dtype": "<c16", "shape": [1],
                                       "data": bytes(16)}}),
        "array-big-endian": pack({"x": {"dtype": ">f8", "shape": [1],
                                        "data": bytes(8)}}),
        "array-neg-shape": pack({"x": {"dtype": "<f8", "shape": [-1],
                                       "data": b""}}),
        "array-huge-shape": pack({"x": {"dtype": "<f8",
                                        "shape": [2**40, 2**40],
                                        "data": b""}}),
        "array-9-dims": pack({"x": {"dtype": "|u1", "shape": [1] * 9,
                                    "data": b"\x00"}}),
        "array-data-str": pack({"x": {"dtype": "|u1", "shape": [1],
                                      "data": "a"}}),
        "array-bool-2": pack({"x": {"dtype": "|b1", "shape": [1],
                                    "data": b"\x02"}}),
    }
    for name, b in bad.items():
        write(("valid-" if name.endswith("-ok") else "bad-") + name, b)


def write(name, b):
    with open(os.path.join(OUT, name + ".mp"), "wb") as f:
        f.write(b)


if __name__ == "__main__":
    sys.exit(main())
