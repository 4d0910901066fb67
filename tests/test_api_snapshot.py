"""The public surface as a committed text, so that a change to it is a visible diff.

``tests/api_snapshot.txt`` lists every name of ``nstjax.__all__`` and of
``nstjax.losses.__all__`` with its home (the module that defines it) and its signature
(a class: its constructor's, or its fields). A change to the surface fails this test until
the snapshot is written again, on purpose:

    python tests/test_api_snapshot.py --update
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("api_snapshot.txt")


def _signature(obj) -> str:
    if inspect.ismodule(obj):
        return "module"
    fields = getattr(obj, "_fields", None)
    if inspect.isclass(obj) and fields is not None:
        return "fields(" + ", ".join(fields) + ")"
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return type(obj).__name__
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def _home(obj) -> str:
    if inspect.ismodule(obj):
        return obj.__name__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def surface() -> str:
    import nstjax
    import nstjax.losses

    lines = []
    for package in (nstjax, nstjax.losses):
        for name in sorted(package.__all__):
            obj = getattr(package, name)
            if name == "__version__":
                continue
            lines.append(f"{package.__name__}.{name} = {_home(obj)} {_signature(obj)}")
    return "\n".join(lines) + "\n"


def test_the_public_surface_is_the_committed_snapshot():
    want = SNAPSHOT.read_text(encoding="utf-8")
    got = surface()
    if got != want:
        import difflib
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                            "api_snapshot.txt", "now"))
        raise AssertionError("the public surface changed; if on purpose, run "
                             "`python tests/test_api_snapshot.py --update`:\n" + diff)


def test_each_public_name_has_one_home():
    """No name is exported from two different definitions under the same package."""
    import nstjax

    homes = {}
    for name in nstjax.__all__:
        obj = getattr(nstjax, name)
        if callable(obj) and not inspect.ismodule(obj):
            homes.setdefault(_home(obj), []).append(name)
    aliases = {home: names for home, names in homes.items() if len(names) > 1}
    assert not aliases, f"one definition under several public names: {aliases}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        SNAPSHOT.write_text(surface(), encoding="utf-8")
        print(f"wrote {SNAPSHOT}")
