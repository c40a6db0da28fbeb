"""The job types' parameter tables as docstring text (for help()), from
``_jobtypes.TYPES``: the tables as of this client's build, written by
deploy/gen-jobdocs.py from the daemon's own (no daemon is needed here;
``Client.describe()`` asks a running one)."""

from __future__ import annotations

import json
from typing import Any

from ._jobtypes import TYPES


def _num(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


def _value(x: Any) -> str:
    if isinstance(x, (bool, int, float)):
        return _num(x)
    if isinstance(x, list):
        return "[" + ", ".join(_value(e) for e in x) + "]"
    return json.dumps(x)


def params_doc(type_name: str, base: str = "    ", indent: str = "    ") -> str:
    """The parameter table of a job type as text: one entry per parameter,
    ``name  type  default  range/choices`` and its meaning below; every line
    starts with base (a docstring's indentation)."""
    t = TYPES[type_name]
    nil = ("None means the default" if t["nil"] == "default"
           else "None is refused")
    lines = [f"Parameters of the {type_name} job (``neuroq describe {type_name}``; "
             f"{nil}; an unknown name raises ``neuroq.errors.BadParam``)::", ""]
    width = max(len(p["name"]) for p in t["params"])
    for p in t["params"]:
        head = f"{p['name']:<{width}}  {p['type']:<7}"
        if "default" in p:
            head += f"  default {_value(p['default'])}"
        elif "default_text" in p:
            head += f"  default: {p['default_text']}"
        if "choices" in p:
            head += "  one of " + ", ".join(p["choices"])
        elif "min" in p or "max" in p:
            head += f"  in [{_num(p.get('min', '-inf'))}, {_num(p.get('max', 'inf'))}]"
        lines.append(indent + head)
        lines.append(indent + "    " + p["doc"])
    return "\n".join(base + x if x else x for x in lines) + "\n"
