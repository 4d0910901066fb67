"""Tests of the one run description (nstjax.run.spec) and the sidecar that records it
(nstjax.run.sidecar): text and flags read alike, one message per unreadable field, and a
sidecar written and read back."""

from __future__ import annotations

import json

import pytest

from nstjax.cli import build_parser, common
from nstjax.run.sidecar import Sidecar, SidecarError
from nstjax.run.spec import RunSpec, SpecError


def _cli(*extra) -> RunSpec:
    _, parsers = build_parser(["stylize"])
    args = common.parse_args(parsers["stylize"], ["--demo", "--output", "o.png", *extra])
    return RunSpec.from_arguments(vars(args))


def test_text_and_flags_give_the_same_spec():
    """The page's form (text) and the parsed command line describe the same run alike."""
    flags = _cli("--style-weight", "1e3", "--style-layers", "relu1_1,relu2_1",
                 "--scale-iters", "20", "10", "--hyper", "mmd-poly.c=0", "--size", "96")
    form = RunSpec.from_arguments({"style_weight": "1e3", "style_layers": "relu1_1 relu2_1",
                                   "scale_iters": "20,10", "hyper": "mmd-poly.c=0",
                                   "size": "96", "tv_weight": "", "preset": ""})
    assert flags == form
    assert form.style_weight == 1000.0 and form.scale_iters == (20, 10)


def test_unreadable_text_is_one_message_per_field():
    spec, errors = RunSpec.read({"iters": "x", "lr": "fast", "style_weight": "7",
                                 "scale_iters": "2.5", "add_detail": "maybe"})
    assert errors == {"iters": "--iters: not a whole number: 'x'",
                      "lr": "--lr: not a number: 'fast'",
                      "scale_iters": "--scale-iters: whole numbers of iterations, please",
                      "add_detail": "--add-detail: not yes or no: 'maybe'"}
    assert spec == RunSpec(style_weight=7.0)
    with pytest.raises(SpecError) as e:
        RunSpec.from_arguments({"iters": "x"})
    assert str(e.value) == "--iters: not a whole number: 'x'"


def test_a_sidecar_is_written_and_read_back(tmp_path):
    path = Sidecar("stylize", {"style_weight": 1e3, "style_layers": ["relu1_1"], "seed": 3},
                   {"loss_history": [float("nan"), 1.0]}).write(tmp_path / "o.png.json")
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["command"] == "stylize"
    back = Sidecar.read(path, command="stylize")
    assert back.spec() == RunSpec(style_weight=1e3, style_layers=("relu1_1",), seed=3)
    assert back.fields["loss_history"] == [None, 1.0]
    with pytest.raises(SidecarError, match="not a sidecar of an nstjax sweep run"):
        Sidecar.read(path, command="sweep")
    (tmp_path / "bad.json").write_text("{")
    for name, words in (("bad.json", "not a readable JSON sidecar"), ("none.json", "no such file")):
        with pytest.raises(SidecarError, match=words) as e:
            Sidecar.read(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
    with pytest.raises(SidecarError, match="no \"arguments\""):
        Sidecar.parse({"command": "stylize"})
