"""Tests of ``nstjax stylize``'s own decisions (nstjax.cli.stylize): the default
coarse-to-fine ladder, what shapes it, and the image it optimises."""

from __future__ import annotations

import pytest

import nstjax
from nstjax.cli import build_parser, common, stylize


def _args(*extra):
    _, parsers = build_parser(["stylize"])
    return common.parse_args(parsers["stylize"], ["--demo", "--output", "o.png", *extra])


@pytest.mark.parametrize("extra,size,expected", [
    ([], 256, ((128, 181, 256), (150, 60, 40))),
    (["--scale-iters", "90,30,20"], 256, ((128, 181, 256), (90, 30, 20))),
    (["--scale-factor", "2"], 512, ((128, 256, 512), (150, 60, 40))),
    (["--scale-iters", "7"], 96, ((96,), (7,))),
    (["--scale-factor", "2"], 96, None),
    (["--iters", "30"], 256, None),
])
def test_ladder_flags_shape_the_default_ladder(extra, size, expected):
    """Without --min-size, --scale-iters and the other ladder flags act on the default ladder
    (from 128 px, multiscale.DEFAULT_SCALE_ITERS); --iters alone keeps one scale."""
    args = _args(*extra)
    ladder = stylize._ladder(args, size, nstjax.Solver())
    got = None if ladder is None else (tuple(ladder[0]), tuple(ladder[1]))
    assert got == expected


@pytest.mark.parametrize("extra,expected", [
    ([], "laplacian"),
    (["--scale-iters", "20,10,5"], "laplacian"),
    (["--parametrization", "pixels"], "pixels"),
    (["--iters", "30"], "pixels"),
    (["--min-size", "64"], "pixels"),
    (["--carry-moments", "--optimizer", "adam"], "pixels"),
    (["--preset", "crowsonkb"], "pixels"),
])
def test_the_default_ladder_optimises_a_laplacian_pyramid(extra, expected):
    """multiscale.DEFAULT_PARAMETRIZATION on the default ladder only: a ladder or an image
    the user names, one scale, a preset's recipe or pixel-only --carry-moments keep theirs."""
    args = _args(*extra)
    objective, _ = common.build_objective(args)
    solver = common.build_solver(args)
    ladder = stylize._ladder(args, 256, solver)
    assert stylize._default_ladder_image(args, objective, ladder).parametrization == expected
