"""Where the built programs are, for every Python test suite.

$NEUROQ_BUILD names a build directory (default: the repository's build/).
A program that is not there fails the test when NEUROQ_BUILD (or the
caller's own override variable) is set -- CI must not pass by skipping --
and skips it otherwise, with the path and what to set.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """$NEUROQ_BUILD, else the repository's build/."""
    return Path(os.environ.get("NEUROQ_BUILD", REPO / "build"))


def require(*paths, override_var: str | None = None) -> None:
    """Fail (NEUROQ_BUILD or override_var set) or skip unless every path is
    an executable file."""
    import pytest

    missing = [str(p) for p in paths if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if not missing:
        return
    msg = f"not built: {', '.join(missing)} (set NEUROQ_BUILD)"
    if "NEUROQ_BUILD" in os.environ or (override_var and override_var in os.environ):
        pytest.fail(msg)
    pytest.skip(msg)


def program(rel: str, override_var: str | None = None) -> str:
    """The built program build_dir()/rel, or $override_var when that is set;
    fails or skips (require) when it is not there."""
    p = (os.environ.get(override_var) if override_var else None) or str(build_dir() / rel)
    require(p, override_var=override_var)
    return p
