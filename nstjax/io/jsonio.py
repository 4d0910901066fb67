"""Strict JSON for every file nstjax writes (sidecars, sweep tables, benchmark records).

Python's :mod:`json` writes ``NaN``, ``Infinity`` and ``-Infinity`` by default, which are not
JSON: browsers, ``jq`` and most languages' parsers reject the whole file.  Here every
non-finite float is written in one fixed, documented way:

==============  ==========  ===============================================================
value           written as  meaning in nstjax's files
==============  ==========  ===============================================================
``+inf``        ``"inf"``   a limit that is not set (no upper bound, e.g. a budget)
``-inf``        ``"-inf"``  a threshold that is not set (e.g. ``threshold``: never stop early)
``nan``         ``null``    no number: a loss that became NaN, or a value never measured
==============  ==========  ===============================================================

:func:`loads` reads the strings ``"inf"`` and ``"-inf"`` back as floats, wherever they
appear (a string field whose whole value is ``"inf"`` would be read as a float too; nstjax
writes no such field), and leaves ``null`` as ``None``: NaN and "not set" are both "no
number", and a reader should treat them alike.

Besides floats, :func:`to_jsonable` converts NumPy and JAX scalars and arrays (to numbers
and nested lists), :class:`os.PathLike` objects (to strings), tuples and sets (to lists) and
mapping keys (to strings).  Strings that hold undecodable file-name bytes (Python keeps them
as lone surrogates) are written with those bytes as ``\\xNN`` text, so the output is valid
UTF-8.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import numpy as np

POS_INF = "inf"
NEG_INF = "-inf"
_DECODE = {POS_INF: math.inf, NEG_INF: -math.inf}


def _float(x: float):
    if math.isnan(x):
        return None
    if math.isinf(x):
        return POS_INF if x > 0 else NEG_INF
    return x


def _str(s: str) -> str:
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:  # lone surrogates from os.fsdecode of non-UTF-8 bytes
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def to_jsonable(obj):
    """Return ``obj`` as plain JSON types, non-finite floats encoded as documented above.

    Raises:
      TypeError: for an object of a type with no JSON form (naming the type).
    """
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(float(obj))
    if isinstance(obj, str):
        return _str(obj)
    if isinstance(obj, os.PathLike):
        path = os.fspath(obj)
        return _str(path) if isinstance(path, str) else path.decode("utf-8", "backslashreplace")
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        a = np.asarray(obj)
        return to_jsonable(a.item()) if a.ndim == 0 else [to_jsonable(v) for v in a.tolist()]
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON")


def _key(k) -> str:
    if isinstance(k, str):
        return _str(k)
    k = to_jsonable(k)
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k if isinstance(k, str) else json.dumps(k)
    raise TypeError(f"cannot use a {type(k).__name__} as a JSON key")


def dumps(obj, **kw) -> str:
    """Serialise ``obj`` as strict JSON (RFC 8259): no ``NaN``/``Infinity`` ever.

    Args:
      obj: any mix of dicts, lists, numbers, strings, NumPy/JAX values and paths.
      **kw: passed to :func:`json.dumps` (``indent``, ``sort_keys``, ...); ``allow_nan`` is
        always False.

    Returns:
      The JSON text; non-finite floats are encoded as the module docstring says.
    """
    kw.pop("allow_nan", None)
    return json.dumps(to_jsonable(obj), allow_nan=False, **kw)


def dump(obj, fp, **kw) -> None:
    """:func:`dumps` into an open text file."""
    fp.write(dumps(obj, **kw))


def _decode(obj):
    if isinstance(obj, str):
        return _DECODE.get(obj, obj)
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    return obj


def _refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def loads(text):
    """Parse strict JSON written by :func:`dumps`; ``"inf"``/``"-inf"`` become floats.

    Raises:
      ValueError: for ``NaN``/``Infinity`` literals (not JSON) or malformed text.
    """
    return _decode(json.loads(text, parse_constant=_refuse_constant))


def load(fp):
    """:func:`loads` from an open text file."""
    return loads(fp.read())
