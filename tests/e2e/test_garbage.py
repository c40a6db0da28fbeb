"""Hostile and malformed requests: each gets an error reply (or, for a message
over the size cap, a dropped connection) and the daemon keeps serving.

CI also runs this file against the AddressSanitizer build.
"""

import json
import math
import random

import numpy as np
import pytest

import neuroq
from conftest import Daemon, _need_binaries, _state_dir, discard, make_data, pack, raw_call
from conftest import wire_array as arr
from neuroq import errors

E = errors.CODES
REQUEST_FAMILY = range(1, 20)


@pytest.fixture(scope="module")
def d():
    """One daemon for the module, with a small message cap."""
    _need_binaries()
    dm = Daemon(_state_dir(), cpu_slots=1, conf={"max_message_bytes": 4 << 20})
    dm.start()
    yield dm
    alive = dm.alive()
    discard(dm)
    assert alive, "neuroqd died during the garbage tests"


def assert_error(reply, codes):
    codes = [codes] if isinstance(codes, int) else list(codes)
    assert reply is not None, "no reply"
    assert reply.get("ok") is False, reply
    assert reply.get("v") == 1
    assert reply["code"] in codes, reply
    assert reply["error"] == errors.NAMES[reply["code"]]
    assert isinstance(reply.get("message"), str) and reply["message"]


def assert_serving(d):
    assert d.alive()
    with d.client(timeout=10) as c:
        assert c.hello()["version"] == 1


def submit(**over):
    m = {"v": 1, "op": "submit", "type": "gsn", "params": {},
         "inputs": {"data": arr(make_data(4, 10, 3))}, "device": "cpu", "priority": 0}
    m.update(over)
    return m


# ---- bytes that are not a request


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes(d, seed):
    rnd = random.Random(seed)
    body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
    assert_error(raw_call(d, body), REQUEST_FAMILY)
    if seed % 5 == 4:
        assert_serving(d)


@pytest.mark.parametrize("body", [
    b"\xdd\xff\xff\xff\xff",                # array32 declaring 2^32-1 elements
    b"\xdf\xff\xff\xff\xff",                # map32, the same
    b"\xc6\xff\xff\xff\xff",                # bin32 of 4 GiB in 5 bytes
    b"\xdb\xff\xff\xff\xff",                # str32 of 4 GiB
    b"\x91" * 100000 + b"\xc0",             # nesting far past the limit
    b"",                                    # nothing at all
    b"\xc1",                                # the never-used byte
    b"\xd4\x01\x00",                        # an ext type
    pack({"v": 1, "op": "hello"}) + b"\x00",  # trailing bytes
    pack([1, "op", "hello"]),               # not a map
    pack({1: 1, "op": "hello"}),            # non-string key
], ids=["array32", "map32", "bin32", "str32", "deep", "empty", "c1", "ext", "trailing",
        "list", "intkey"])
def test_hostile_documents(d, body):
    assert_error(raw_call(d, body), (E["EPROTO"], E["ETOOBIG"]))
    assert_serving(d)


def test_truncated(d):
    full = pack(submit())
    for cut in (1, 7, 40, len(full) // 2, len(full) - 1):
        assert_error(raw_call(d, full[:cut]), E["EPROTO"])
    assert_serving(d)


# ---- well-formed msgpack, wrong contents


@pytest.mark.parametrize("msg,codes", [
    ({"op": "hello"}, ("EPROTO", "EVERSION")),                  # no version
    ({"v": 2, "op": "hello"}, "EVERSION"),
    ({"v": "1", "op": "hello"}, ("EPROTO", "EVERSION")),
    ({"v": 1}, ("EPROTO", "EBADOP")),                            # no op
    ({"v": 1, "op": 7}, ("EPROTO", "EBADOP")),
    ({"v": 1, "op": "explode"}, "EBADOP"),
    ({"v": 1, "op": "status"}, "EBADPARAM"),                     # no id
    ({"v": 1, "op": "status", "id": "12"}, "EBADPARAM"),
    ({"v": 1, "op": "status", "id": 1.5}, "EBADPARAM"),
    ({"v": 1, "op": "cancel", "id": [1]}, "EBADPARAM"),
    ({"v": 1, "op": "list", "all_users": "yes"}, "EBADPARAM"),
    ({"v": 1, "op": "list", "state": "SLEEPING"}, "EBADPARAM"),
    ({"v": 1, "op": "result", "id": -1}, ("EBADPARAM", "ENOJOB")),
], ids=lambda x: str(x)[:40])
def test_wrong_fields(d, msg, codes):
    codes = [E[codes]] if isinstance(codes, str) else [E[c] for c in codes]
    assert_error(raw_call(d, pack(msg)), codes)


@pytest.mark.parametrize("over,codes", [
    ({"type": "nosuchtype"}, "EBADTYPE"),
    ({"type": 3}, ("EBADPARAM", "EBADTYPE")),
    ({"params": {"nosuchparam": 1}}, "EBADPARAM"),
    ({"params": {"wantshrinkage": "maybe"}}, "EBADPARAM"),
    ({"params": {"shrinklevels": [0.5, 2.0]}}, "EBADPARAM"),
    ({"params": {"returns": ["cX"]}}, "EBADPARAM"),
    ({"params": {"uneven": "sideways"}}, "EBADPARAM"),
    ({"params": [1, 2]}, "EBADPARAM"),
    ({"inputs": {}}, ("EBADPARAM", "EBADARRAY")),                  # no data
    ({"inputs": {"data": 5}}, ("EBADPARAM", "EBADARRAY")),
    ({"inputs": {"data": arr(np.zeros((4, 10)))}}, ("EBADARRAY", "EBADDATA", "EBADPARAM")),
    ({"inputs": {"data": arr(np.zeros((4, 10, 3, 2)))}}, ("EBADARRAY", "EBADDATA", "EBADPARAM")),
    ({"inputs": {"data": arr(make_data(4, 10, 1))}}, ("EBADDATA", "EBADARRAY", "EBADPARAM")),
    ({"inputs": {"data": arr(np.zeros((0, 10, 3)))}}, ("EBADDATA", "EBADARRAY", "EBADPARAM")),
    ({"inputs": {"data": {"dtype": "<f8", "shape": [4, 10, 3], "data": b"\0" * 8}}},
     ("EBADARRAY", "EPROTO")),                                  # size disagrees with shape
    ({"inputs": {"data": {"dtype": ">f8", "shape": [1, 2, 2], "data": b"\0" * 32}}},
     ("EBADARRAY", "EPROTO")),
    ({"inputs": {"data": {"dtype": "<c16", "shape": [1, 2, 2], "data": b"\0" * 64}}},
     ("EBADARRAY", "EPROTO")),
    ({"inputs": {"data": {"dtype": "<f8", "shape": [2 ** 40, 2 ** 40, 2], "data": b""}}},
     ("EBADARRAY", "EPROTO")),                                  # shape product overflows
    ({"inputs": {"data": {"dtype": "<f8", "shape": [-1, 2, 2], "data": b""}}},
     ("EBADARRAY", "EPROTO")),
    ({"device": "tpu"}, ("EBADDEVICE", "ENODEV")),
    ({"device": "cuda:99"}, ("EBADDEVICE", "ENODEV", "ETOOLARGE")),
    ({"priority": 1000}, "EBADPARAM"),
    ({"priority": "high"}, "EBADPARAM"),
    ({"idem": "k" * 500}, "EBADPARAM"),
    ({"umask": 0o1000}, "EBADPARAM"),
    ({"umask": -1}, "EBADPARAM"),
    ({"umask": "022"}, "EBADPARAM"),
], ids=lambda x: str(x)[:50])
def test_bad_submit(d, over, codes):
    codes = [E[codes]] if isinstance(codes, str) else [E[c] for c in codes]
    assert_error(raw_call(d, pack(submit(**over))), codes)


def test_bad_values(d):
    x = make_data(4, 10, 3)
    y = x.copy()
    y[1, 2, 0] = math.inf
    assert_error(raw_call(d, pack(submit(inputs={"data": arr(y)}))), E["EBADDATA"])
    y = x.copy()
    y[:, 3, :] = np.nan  # a condition with no valid trial
    assert_error(raw_call(d, pack(submit(inputs={"data": arr(y)}))), E["EBADDATA"])
    y = x.copy()
    y[:, :, :] = np.nan
    assert_error(raw_call(d, pack(submit(inputs={"data": arr(y)}))), E["EBADDATA"])
    # NaN marking missing trials is legal gsn input, not garbage
    y = x.copy()
    y[:, 3, 0] = np.nan
    rep = raw_call(d, pack(submit(inputs={"data": arr(y)})))
    assert rep["ok"] is True, rep
    assert_serving(d)


def test_oversized_message(d):
    """Over max_message_bytes (4 MiB here): refused, never buffered."""
    body = pack(submit(inputs={"data": arr(np.zeros((200, 200, 20)))}))  # 6.4 MB
    rep = raw_call(d, body, timeout=3)
    if rep is not None:  # the cap may drop the pipe instead of answering
        assert_error(rep, E["ETOOBIG"])
    assert_serving(d)


def test_nothing_was_queued_by_garbage(d):
    with d.client() as c:
        jobs = c.jobs(all_users=True, limit=1000)
    # only the NaN-missing-trial submit of test_bad_values is a real job
    assert len(jobs) <= 1, [(j["id"], j["state"]) for j in jobs]


def test_python_client_maps_codes(d):
    with d.client() as c:
        with pytest.raises(errors.NoJob) as ei:
            c.status(10 ** 9)
        assert ei.value.code == 20 and ei.value.name == "ENOJOB" and ei.value.message
        assert isinstance(ei.value, errors.JobError)
        with pytest.raises(errors.BadType) as ei:
            c.submit("nosuchtype", inputs={"data": make_data(3, 5, 2)})
        assert isinstance(ei.value, ValueError) and ei.value.code == 5
        with pytest.raises(errors.BadParam):
            c.submit("gsn", inputs={"data": make_data(3, 5, 2)}, params={"bogus": 1})
        with pytest.raises(neuroq.errors.BadArray):
            c.submit("gsn", inputs={"data": np.zeros((2, 2, 2), dtype=np.complex128)})


def test_clients_refuse_oversized_submits(d, tmp_path):
    """The CLI and the Python client ask the daemon's limit for a big request
    and say ETOOBIG instead of timing out on a dropped pipe."""
    x = np.zeros((200, 200, 20))  # 6.4 MB > 4 MiB
    with d.client() as c:
        with pytest.raises(errors.TooBig) as ei:
            c.submit("gsn", inputs={"data": x})
        assert ei.value.code == 2 and "max_message_bytes" in ei.value.message
    np.save(tmp_path / "big.npy", x)
    r = d.cli("submit", "gsn", "--data", tmp_path / "big.npy")
    assert r.returncode == 1 and r.stderr.startswith("neuroq: ETOOBIG: "), r.stderr
    r = d.cli("--json", "submit", "gsn", "--data", tmp_path / "big.npy")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"] == "ETOOBIG"
    assert_serving(d)
