#!/usr/bin/env python3
"""Generate the job types' parameter docs from their tables.

The tables live in the job types' C sources (daemon/jobs/params.h: one
`struct job_desc` per type); `neuroq-worker describe` prints them as JSON,
the same maps the daemon's `describe` op serves. From that this script
writes:

  * every block between `<!-- BEGIN generated: TYPE KIND -->` and
    `<!-- END generated: TYPE KIND -->` (KIND: params, inputs, outputs) in
    proto/PROTOCOL.md, README.md and daemon/jobs/spikesort/README.md;
  * client/python/neuroq/_jobtypes.py (the tables as a Python literal, for
    the client's docstrings and help() without a daemon).

    deploy/gen-jobdocs.py [--build DIR | --json FILE] [--root DIR] [--check]

--build: where neuroq-worker is (default $NEUROQ_BUILD or ./build);
--json: read the tables from FILE instead (`neuroq describe --json` or
`neuroq-worker describe` output; "-" is stdin); --root: the source tree
(default: this script's); --check: write nothing, exit 1 and name every
file whose generated part differs from the tables (tests/e2e/test_describe.py
runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import pprint
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

DOCS = ("proto/PROTOCOL.md", "README.md", "daemon/jobs/spikesort/README.md")
PYFILE = "client/python/neuroq/_jobtypes.py"
BLOCK = re.compile(r"(<!-- BEGIN generated: (\S+) (params|inputs|outputs) -->\n)"
                   r"(.*?)"
                   r"(<!-- END generated: \2 \3 -->)", re.S)


def load(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.json is not None:
        text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text()
    else:
        worker = Path(args.build) / "daemon" / "neuroq-worker"
        text = subprocess.run([str(worker), "describe"], check=True,
                              capture_output=True, text=True).stdout
    types: list[dict[str, Any]] = json.loads(text)["types"]
    return types


def num(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


def value(x: Any) -> str:
    """A default as JSON, floats as people write them."""
    if isinstance(x, (bool, int, float)):
        return num(x)
    if isinstance(x, list):
        return "[" + ", ".join(value(e) for e in x) + "]"
    return json.dumps(x)


def cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def shape(s: list[Any]) -> str:
    return " × ".join(str(e) for e in s)


def params_md(t: dict[str, Any]) -> str:
    rows = ["| parameter | type | default | range / choices | meaning |",
            "|---|---|---|---|---|"]
    for p in t["params"]:
        if "default" in p:
            d = f"`{value(p['default'])}`"
        else:
            d = p.get("default_text", "—")
        r = ""
        if "choices" in p:
            r = ", ".join(f"`{c}`" for c in p["choices"])
        elif "min" in p or "max" in p:
            r = f"[{num(p.get('min', '-inf'))}, {num(p.get('max', 'inf'))}]"
            if "min_items" in p:
                r = f"each in {r}; {p['min_items']} to {p['max_items']} items"
        rows.append(f"| `{p['name']}` | {cell(p['type'])} | {cell(d)} | {cell(r)} | "
                    f"{cell(p['doc'])} |")
    nil = ("a nil (None) value means the parameter's default" if t["nil"] == "default"
           else "a nil value is refused (`EBADPARAM`)")
    rows.append("")
    rows.append(f"Any other parameter name is refused (`EBADPARAM`); {nil}.")
    return "\n".join(rows) + "\n"


def inputs_md(t: dict[str, Any]) -> str:
    rows = ["| input | dtypes | shape | required | meaning |", "|---|---|---|---|---|"]
    for i in t["inputs"]:
        rows.append(f"| `{i['name']}` | {', '.join(f'`{d}`' for d in i['dtypes'])} | "
                    f"{shape(i['shape'])} | {'yes' if i['required'] else 'no'} | "
                    f"{cell(i['doc'])} |")
    rows.append("")
    sym = "; ".join(f"{k} = {v}" for k, v in t["symbols"].items())
    rows.append(f"Any other input name is refused (`EBADPARAM`). Shapes: {sym}.")
    return "\n".join(rows) + "\n"


def outputs_md(t: dict[str, Any]) -> str:
    rows = ["| output | type | shape | present | meaning |", "|---|---|---|---|---|"]
    for o in t["outputs"]:
        ty = ", ".join(f"`{d}`" for d in o["dtypes"]) if "dtypes" in o else o["type"]
        rows.append(f"| `{o['name']}` | {cell(ty)} | {shape(o.get('shape', [])) or '—'} | "
                    f"{cell(o['when'])} | {cell(o['doc'])} |")
    return "\n".join(rows) + "\n"


RENDER = {"params": params_md, "inputs": inputs_md, "outputs": outputs_md}


def fill(text: str, types: dict[str, dict[str, Any]], where: str) -> str:
    def one(m: re.Match[str]) -> str:
        name, kind = m.group(2), m.group(3)
        if name not in types:
            raise SystemExit(f"{where}: generated block for unknown job type {name!r}")
        return m.group(1) + RENDER[kind](types[name]) + m.group(5)
    return BLOCK.sub(one, text)


def python_module(types: list[dict[str, Any]]) -> str:
    body = pprint.pformat({t["name"]: t for t in types}, width=100, sort_dicts=False)
    return ('"""The job types\' tables as neuroqd\'s `describe` op serves them (one map per\n'
            'type: params, inputs, outputs; proto/PROTOCOL.md, describe).\n\n'
            'Generated by deploy/gen-jobdocs.py from `neuroq-worker describe`: do not\n'
            'edit; change the table in daemon/jobs and run the script.\n"""\n\n'
            "from typing import Any, Dict\n\n"
            f"TYPES: Dict[str, Dict[str, Any]] = {body}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("NEUROQ_BUILD", "build"))
    ap.add_argument("--json")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    root = Path(args.root)
    types = load(args)
    by_name = {t["name"]: t for t in types}
    want: dict[str, str] = {PYFILE: python_module(types)}
    for rel in DOCS:
        old = (root / rel).read_text()
        want[rel] = fill(old, by_name, rel)
    stale = [rel for rel, text in want.items()
             if not (root / rel).exists() or (root / rel).read_text() != text]
    if args.check:
        for rel in stale:
            print(f"{rel}: differs from the job types' tables; run deploy/gen-jobdocs.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for rel in stale:
        (root / rel).write_text(want[rel])
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
