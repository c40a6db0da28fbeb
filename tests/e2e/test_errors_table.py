"""The Python client's error table is proto/nq_error.h, code for code (no
daemon needed), and the daemon uses the same names on the wire."""

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO
from neuroq import errors

HEADER = REPO / "proto" / "nq_error.h"


def header_table():
    text = HEADER.read_text()
    rows = re.findall(r'X\((\w+),\s*(\d+),\s*"((?:[^"\\]|\\.)*)"\)', text)
    assert len(rows) > 10, "could not parse NQ_ERRNO_MAP"
    return [(n, int(c), t) for n, c, t in rows if n != "OK"]


def test_codes_match_header():
    want = header_table()
    have = [(n, c, t) for n, c, t, _ in errors.TABLE]
    assert have == want


def written_out_classes():
    """{class name: (code, name, text)} of the `class` statements of
    neuroq/errors.py that set a code (read from the source, not the module:
    a class made at run time would not count)."""
    tree = ast.parse(Path(errors.__file__).read_text())
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for st in node.body:
            if (isinstance(st, ast.Assign) and len(st.targets) == 1
                    and isinstance(st.targets[0], ast.Tuple)
                    and [t.id for t in st.targets[0].elts] == ["code", "name", "text"]):
                found[node.name] = tuple(ast.literal_eval(st.value))
    return found


def test_every_code_has_its_written_out_class():
    """Each code of nq_error.h has a `class` statement in errors.py with its
    code, name and text, and it is the class the client raises for it."""
    written = written_out_classes()
    by_code = {code: (cls_name, (code, name, text)) for cls_name, (code, name, text)
               in written.items()}
    assert len(by_code) == len(written), "two classes share a code"
    for name, code, text in header_table():
        assert code in by_code, f"{name} ({code}) has no class statement in errors.py"
        cls_name, row = by_code[code]
        assert row == (code, name, text), cls_name
        cls = getattr(errors, cls_name)
        assert cls.__module__ == "neuroq.errors" and cls.__name__ == cls_name
        assert errors.BY_CODE[code] is cls
        assert cls.__doc__ == f"{name} ({code}): {text}."
    assert len(written) == len(header_table()), "a class for a code nq_error.h lacks"


def test_one_class_per_code_in_its_family():
    fam = {range(1, 20): errors.RequestError, range(20, 40): errors.JobError,
           range(40, 60): errors.ResourceError, range(60, 80): errors.DaemonError}
    names = set()
    for name, code, text, cls_name in errors.TABLE:
        cls = getattr(errors, cls_name)
        assert errors.BY_CODE[code] is cls
        assert cls.code == code and cls.name == name
        assert issubclass(cls, errors.NeuroqError)
        want = [f for r, f in fam.items() if code in r]
        assert len(want) == 1 and issubclass(cls, want[0]), name
        names.add(cls_name)
    assert len(names) == len(errors.TABLE)


@pytest.mark.parametrize("name,code,text", header_table())
def test_reply_maps_to_class(name, code, text):
    e = errors.from_reply({"v": 1, "ok": False, "code": code, "error": name, "message": "m"})
    assert type(e) is errors.BY_CODE[code]
    assert (e.code, e.name, e.message) == (code, name, "m")
    assert str(e) == f"{name}: m"


def test_unknown_code_keeps_family():
    e = errors.from_reply({"ok": False, "code": 19, "error": "ENEW", "message": "x"})
    assert isinstance(e, errors.RequestError) and e.code == 19 and e.name == "ENEW"
    e = errors.from_reply({"ok": False, "code": "bad"})
    assert isinstance(e, errors.Proto)


def test_cli_names_match(daemon):
    """The CLI prints the daemon's names: "neuroq: ENOJOB: ..."."""
    r = daemon.cli("cancel", "424242")
    assert r.returncode == 1
    assert r.stderr.split(":")[:2] == ["neuroq", " ENOJOB"]
