"""Tests of nstjax.io.jsonio: strict JSON out, the documented non-finite scheme back in.

"Strict" is checked with :func:`json.loads` given a ``parse_constant`` that raises, which
is how Python's parser is made to reject ``NaN``/``Infinity``/``-Infinity`` the way
browsers and other languages do.  Values are compared exactly: JSON floats round-trip
``repr`` exactly, float32 values widen to float64 exactly.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.io import jsonio


def strict(text):
    def refuse(name):
        raise AssertionError(f"non-standard constant {name} in {text!r}")
    return json.loads(text, parse_constant=refuse)


def test_nonfinite_floats_follow_the_documented_scheme():
    obj = {"threshold": -math.inf, "budget": math.inf, "loss": math.nan, "x": 1.5}
    text = jsonio.dumps(obj, sort_keys=True)
    assert strict(text) == {"budget": "inf", "loss": None, "threshold": "-inf", "x": 1.5}
    assert "Infinity" not in text and "NaN" not in text
    back = jsonio.loads(text)
    assert back["threshold"] == -math.inf and back["budget"] == math.inf
    assert back["loss"] is None and back["x"] == 1.5


def test_allow_nan_cannot_be_switched_back_on():
    text = jsonio.dumps([math.nan, math.inf], allow_nan=True)
    assert strict(text) == [None, "inf"]


def test_numpy_jax_and_paths_are_converted():
    obj = {
        "f32": np.float32(0.1), "i64": np.int64(7), "b": np.bool_(True),
        "arr": np.array([[1.0, np.inf], [np.nan, -np.inf]], np.float32),
        "jax": jnp.array([0.5, jnp.inf]), "jax0": jnp.float32(2.0),
        "path": Path("/tmp/out dir/x.png"), "tuple": (1, 2), "nested": [{"k": np.nan}],
        3: "int key",
    }
    got = strict(jsonio.dumps(obj))
    assert got["f32"] == float(np.float32(0.1))  # exact float32 -> float64 widening
    assert got["i64"] == 7 and got["b"] is True
    assert got["arr"] == [[1.0, "inf"], [None, "-inf"]]
    assert got["jax"] == [0.5, "inf"] and got["jax0"] == 2.0
    assert got["path"] == "/tmp/out dir/x.png" and got["tuple"] == [1, 2]
    assert got["nested"] == [{"k": None}] and got["3"] == "int key"
    assert jsonio.loads(jsonio.dumps(obj))["arr"] == [[1.0, math.inf], [None, -math.inf]]


def test_undecodable_file_name_bytes_give_valid_utf8():
    name = os.fsdecode(b"caf\xe9 \xff.png")  # Latin-1 bytes on a UTF-8 system
    text = jsonio.dumps({"output": Path(name), "plain": name})
    text.encode("utf-8")  # no lone surrogates left
    got = strict(text)
    assert got["output"] == got["plain"] == "caf\\xe9 \\xff.png"


def test_loads_refuses_non_standard_constants_and_unknown_types():
    for bad in ("NaN", "[Infinity]", '{"t": -Infinity}'):
        with pytest.raises(ValueError, match="not strict JSON"):
            jsonio.loads(bad)
    with pytest.raises(TypeError, match="cannot write a object as JSON"):
        jsonio.dumps({"x": object()})


def test_round_trip_of_every_finite_float_is_exact():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(100) * 10.0 ** rng.integers(-30, 30, 100),
                             [0.0, -0.0, 5e-324, 1.7976931348623157e308]]).tolist()
    assert jsonio.loads(jsonio.dumps(values)) == values
