"""A :class:`~nstjax.run.spec.RunSpec` resolved: the library's objects, every default and
every check of a run's settings in one place.

:func:`resolve` fills in the spec's preset (:func:`with_preset`), then builds the
:class:`~nstjax.Objective` (:func:`objective_of`), the :class:`~nstjax.Solver`
(:func:`solver_of`), the plan: one size or a coarse-to-fine
:class:`~nstjax.run.plans.Ladder` (:func:`ladder_of`: the command's
default ladder on a Laplacian pyramid, or a preset's, or ``--min-size``'s) and the
:func:`~nstjax.loss_weights` (:func:`weights_kwargs`), and returns them as a :class:`Run`.
Each field is checked alone first, so a :class:`~nstjax.run.spec.SpecError` files every
message under the field it concerns.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

from nstjax.io.image import DEFAULT_SIZE, MIN_SIZE
from nstjax.losses import parse_style_spec
from nstjax.objective.config import LossWeights, Objective, loss_weights
from nstjax.run import multiscale
from nstjax.run.plans import Ladder, Single, color_of, stylize
from nstjax.run.presets import Preset, get_preset
from nstjax.run.spec import (
    LADDER_FIELDS,
    OBJECTIVE_KEYS,
    SOLVER_KEYS,
    WEIGHT_KEYS,
    RunSpec,
    SpecError,
    flag,
)
from nstjax.run.start import INITS, MAX_SEED, SWEEP_INITS, check_solver
from nstjax.solve.solver import Solver

DEFAULT_INIT = "grey"        # jcjohnson/neural-style's start: the mean colour, faint noise
COLORS = ("luminance", "histogram")
COLOR_MATCHES = ("cholesky", "eigen")


class Run(NamedTuple):
    """A resolved :class:`RunSpec`: what the drivers take.

    Attributes:
      spec: the spec with its preset's settings filled in.
      size: long edge of the output.
      objective, weights, solver: the library's objects (``weights`` for ``n_styles``; for
        a preset of its own method, the default objective and its content weight).
      style_mix: the fusion weights parsed from ``--style-loss`` (None: the default).
      plan: :class:`~nstjax.run.plans.Single` or the coarse-to-fine
        :class:`~nstjax.run.plans.Ladder` (its ``iters`` one per size).
      init: a named start, or the path of a start image (the caller loads it).
      seed: the PRNG seed.
      preserve_color, color_match: the colour control (None: off).
      preset: the :class:`~nstjax.run.presets.Preset` named, or None.
    """

    spec: RunSpec
    size: int
    objective: Objective | None
    weights: LossWeights | None
    solver: Solver
    style_mix: tuple | None
    plan: Single | Ladder
    init: str
    seed: int
    preserve_color: str | None
    color_match: str
    preset: Preset | None

    @property
    def method(self) -> str:
        """``"objective"``, or the preset's own method (``"nnst"``)."""
        return self.preset.method if self.preset else "objective"

    @property
    def ladder(self) -> Ladder | None:
        """The plan when it is a ladder, else None."""
        return self.plan if isinstance(self.plan, Ladder) else None

    @property
    def color(self):
        """The colour control as :func:`nstjax.stylize`'s ``color`` value, or None."""
        return color_of(self.preserve_color, self.color_match)

    def arguments(self) -> dict:
        """Keyword arguments of :func:`nstjax.stylize` (the plan, the colour, the
        objective, weights, solver and start; the PRNG key from ``seed``)."""
        return {"key": jax.random.PRNGKey(self.seed), "plan": self.plan, "color": self.color,
                "objective": self.objective, "weights": self.weights, "solver": self.solver,
                "init": self.init}

    def nnst_arguments(self) -> dict:
        """Keyword arguments of :func:`nstjax.nnst` for a run of its own method (``--preset
        nnst``): Adam's steps per pass and rate, and ``alpha = 1 − content_weight`` (the
        authors' ``content_weight`` is the share of the current image in the search)."""
        s = self.spec
        return {"key": jax.random.PRNGKey(self.seed), "iters": int(s.iters),
                "lr": float(s.lr), "alpha": 1.0 - float(s.content_weight)}

    @property
    def iterations(self) -> int:
        """Iterations in all: the ladder's sum, or the solver's."""
        return sum(self.ladder.iters) if self.ladder else self.solver.max_iter


def stylize_run(vgg, content, style, run: Run, **kw):
    """``run`` on the images: :func:`nstjax.stylize` along ``run.plan`` (one size or its
    ladder) with its colour control, ``kw`` (``callbacks``, masks, ``alpha``, an ``init``
    image, a ``key``) passed on over :meth:`Run.arguments`; for a run of NNST's own method
    (``--preset nnst``), :func:`nstjax.nnst` with :meth:`Run.nnst_arguments` (``kw``:
    ``callbacks``, ``key``, or its own keywords).

    Raises:
      ValueError: a keyword that NNST does not take (masks, ``alpha``, a start image)
        given with ``--preset nnst``.
    """
    if run.method == "nnst":
        from nstjax.run.nnst import nnst

        taken = {"callbacks", "key", "scales", "flip", "final_pass", "colorize", "block"}
        other = sorted(set(kw) - taken)
        if other:
            raise ValueError(f"--preset nnst takes no {', '.join(other)}")
        return nnst(vgg, content, style, **{**run.nnst_arguments(), **kw})
    return stylize(vgg, content, style, **{**run.arguments(), **kw})


def with_preset(spec: RunSpec) -> tuple[RunSpec, Preset | None]:
    """``spec`` with its preset's settings where it gives none; a field the preset refuses,
    given with another value than the preset's, is a :class:`SpecError`."""
    if spec.preset is None:
        return spec, None
    try:
        preset = get_preset(spec.preset)
    except ValueError as e:
        raise SpecError({"preset": str(e)}) from None
    own = RunSpec.from_arguments(preset.settings)
    given = spec.given()
    for name, reason in preset.refuses.items():
        value = given.get(name)
        if value is not None and value != getattr(own, name, None):
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
            raise SpecError({name: f"--preset {preset.name} {reason}: not with {flag(name)} "
                             f"{shown}"})
    return dataclasses.replace(own, **given), preset


def check_size(size: int | None, *, max_size: int | None = None) -> int:
    """The output's long edge (:data:`~nstjax.io.image.DEFAULT_SIZE` when None, at most
    ``max_size``); one :class:`SpecError` line outside ``[MIN_SIZE, max_size]``."""
    if size is None:
        return DEFAULT_SIZE if max_size is None else min(DEFAULT_SIZE, max_size)
    if size < MIN_SIZE:
        raise SpecError({"size": f"--size {size} is below the {MIN_SIZE}-pixel minimum"})
    if max_size is not None and size > max_size:
        raise SpecError({"size": f"--size {size} is above this server's {max_size}-pixel "
                         "limit"})
    return size


def objective_of(spec: RunSpec) -> tuple[Objective, tuple | None]:
    """``(Objective, style mix)`` of the spec's objective fields; each field is tried alone
    first, so that a message is filed under the field it concerns."""
    kw, mix, errors = {}, None, {}
    if spec.style_loss is not None:
        try:
            kw["style_losses"], mix = parse_style_spec(spec.style_loss)
            Objective(style_losses=kw["style_losses"])
        except ValueError as e:
            errors["style_loss"] = str(e)
    for name in ("content_layers", "style_layers"):
        if getattr(spec, name) is not None:
            kw[name] = getattr(spec, name)
    for name in OBJECTIVE_KEYS:
        value = getattr(spec, name)
        if value is not None and not (name == "remat" and value == "auto"):
            kw[name] = value
    for name in ("content_layers", "style_layers", *OBJECTIVE_KEYS):
        if name in kw and name not in errors:
            try:
                Objective(**{name: kw[name]})
            except ValueError as e:
                errors[name] = str(e)
    if errors:
        raise SpecError(errors)
    try:
        return Objective(**kw), mix
    except ValueError as e:
        raise SpecError({"style_loss" if spec.style_loss else "style_layers": str(e)}) from None


def solver_of(spec: RunSpec) -> Solver:
    """The :class:`Solver` of the spec's solver fields (each field's message its own)."""
    kw = {field: getattr(spec, name) for name, field in SOLVER_KEYS.items()
          if getattr(spec, name) is not None}
    errors = {}
    for name, field in SOLVER_KEYS.items():
        if field in kw:
            try:
                Solver(**{field: kw[field]})
            except ValueError as e:
                errors[name] = str(e)
    if errors:
        raise SpecError(errors)
    return Solver(**kw)


def hyper_of(items) -> dict:
    """``{"mmd-poly.c": 0.0}`` from ``("mmd-poly.c=0", ...)``."""
    out = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq:
            raise SpecError({"hyper": f"--hyper: expected METHOD.PARAM=VALUE, got {item!r}"})
        try:
            out[name] = float(value)
        except ValueError:
            raise SpecError({"hyper": f"--hyper {name}: not a number: {value!r}"}) from None
    return out


def weights_kwargs(spec: RunSpec, objective: Objective, mix, n_styles: int = 1) -> dict:
    """:func:`nstjax.loss_weights`' keyword arguments (``n_styles`` aside), each field
    checked alone against ``objective``."""
    kw = {"style_mix": mix}
    for name in WEIGHT_KEYS:
        if getattr(spec, name) is not None:
            kw[name] = getattr(spec, name)
    hyper = hyper_of(spec.hyper)
    errors = {}
    for name in WEIGHT_KEYS:
        if name in kw:
            try:
                loss_weights(objective, n_styles=n_styles, style_mix=mix, **{name: kw[name]})
            except ValueError as e:
                errors[name] = str(e)
    if errors:
        raise SpecError(errors)
    if hyper:
        kw["hyper"] = hyper
    try:
        loss_weights(objective, n_styles=n_styles, **kw)
    except ValueError as e:
        raise SpecError({"hyper" if hyper else "style_loss": str(e)}) from None
    return kw


def ladder_of(spec: RunSpec, size: int, solver: Solver, preset: Preset | None = None
              ) -> Ladder | None:
    """The coarse-to-fine schedule, or None for one size.

    Without ``min_size`` the default ladder: from :data:`multiscale.DEFAULT_MIN_SIZE`, with
    :data:`multiscale.DEFAULT_SCALE_ITERS` (crowsonkb/style-transfer-pytorch's and STROTSS's
    coarse-to-fine start, which paints large regions the way 500 full-size iterations of
    jcjohnson/neural-style do, in a fraction of the time: benchmarks/classic_look.py);
    ``iters`` or ``tile`` alone keep one size, as does a size of the default first size or
    less; :data:`LADDER_FIELDS` without ``min_size`` shape the default ladder.  A preset's
    ladder at a size below its first is one rung."""
    given = [name for name in LADDER_FIELDS if getattr(spec, name) is not None]
    if spec.content_decay is not None and not 0.0 < spec.content_decay <= 1e3:
        raise SpecError({"content_decay": f"--content-decay must be a positive number, not "
                         f"{spec.content_decay}"})
    factor = multiscale.LADDER_FACTOR if spec.scale_factor is None else spec.scale_factor
    if not 1.0 < factor <= 16.0:
        raise SpecError({"scale_factor": f"--scale-factor must be above 1 and at most 16, "
                         f"not {factor}"})
    if spec.min_size is None and (spec.iters is not None or spec.tile):
        if given:
            other = "--iters" if spec.iters is not None else "--tile"
            raise SpecError({given[0]: f"{flag(given[0])} shapes the coarse-to-fine ladder, "
                             f"which {other} turns off: give --min-size too"})
        return None
    min_size, shrunk = spec.min_size, False
    if min_size is None:
        if size <= multiscale.DEFAULT_MIN_SIZE and spec.scale_iters is None:
            return None                     # one scale, with or without the ladder's fields
        min_size = multiscale.DEFAULT_MIN_SIZE
        if min_size > size:
            min_size, shrunk = size, True   # the default ladder at a small size: one rung
    elif preset is not None and min_size > size and min_size == preset.settings.get("min_size"):
        min_size, shrunk = size, True       # a preset's ladder at a small size: one rung
    try:
        sizes = multiscale.size_ladder(min_size, size, factor=factor)
    except ValueError as e:
        raise SpecError({"min_size": str(e)}) from None
    if spec.min_size is None and spec.scale_iters is None:
        iters = multiscale.default_iterations(len(sizes))
    else:
        counts = list(spec.scale_iters or (solver.max_iter,))[:len(sizes) if shrunk else None]
        try:
            iters = multiscale.scale_iterations(counts[0] if len(counts) == 1 else counts,
                                                len(sizes))
        except ValueError as e:
            raise SpecError({"scale_iters": f"--scale-iters: {e}"}) from None
    return Ladder(sizes[0], iters, factor, bool(spec.add_detail), bool(spec.carry_moments),
                  1.0 if spec.content_decay is None else spec.content_decay)


def resolve(spec: RunSpec, *, n_styles: int = 1, max_size: int | None = None,
            sweep: bool = False, init_files: bool = True) -> Run:
    """``spec`` as the library's objects, every check before any work.

    Args:
      spec: the settings.
      n_styles: how many style images the run blends.
      max_size: the largest long edge allowed (a server's limit), or None.
      sweep: the batched drivers' run (their starts only; no colour control or ladder).
      init_files: whether ``init`` may name a start image (the command line's; the page's
        starts are named ones).

    Raises:
      SpecError: ``{field: message}`` for every field found wrong (the objective's,
        the solver's and the weights' fields each checked alone).
    """
    errors: dict = {}

    def attempt(fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except SpecError as e:
            for k, v in e.errors.items():
                errors.setdefault(k, v)
            return None

    spec, preset = with_preset(spec)
    size = attempt(check_size, spec.size, max_size=max_size)
    seed = 0 if spec.seed is None else spec.seed
    if not 0 <= seed <= MAX_SEED:
        errors["seed"] = f"--seed must be a whole number from 0 to {MAX_SEED}, not {seed}"
    if spec.preserve_color is not None and spec.preserve_color not in COLORS:
        errors["preserve_color"] = (f"--preserve-color must be one of {', '.join(COLORS)}, "
                                    f"not {spec.preserve_color!r}")
    if spec.color_match is not None and spec.color_match not in COLOR_MATCHES:
        errors["color_match"] = (f"--color-match must be one of {', '.join(COLOR_MATCHES)}, "
                                 f"not {spec.color_match!r}")
    if sweep and spec.preserve_color:
        errors["preserve_color"] = "a sweep does not preserve colour: drop --preserve-color"
    init = spec.init or (DEFAULT_INIT if not sweep else "content")
    starts = SWEEP_INITS if sweep else INITS
    if init not in starts and not init_files:
        errors["init"] = f"--init must be one of {', '.join(starts)}, not {init!r}"
    solver = attempt(solver_of, spec)
    if preset is not None and preset.method != "objective":
        if sweep:
            errors["preset"] = (f"{preset.name} runs one image at a time: its targets are "
                                "searched anew at each scale, not a swept weight")
        share = spec.content_weight
        if share is not None and not 0.0 <= share <= 1.0:
            errors["content_weight"] = ("NNST's content weight is the share of the current "
                                        f"image in the neighbour search, in [0, 1], not {share}")
        if errors:
            raise SpecError(errors)
        objective = Objective()       # not solved: the record of the share in the weights
        weights = loss_weights(objective, content_weight=share)
        return Run(spec, size, objective, weights, solver, None, Single(), init, seed, None,
                   "cholesky", preset)
    objective, mix = attempt(objective_of, spec) or (None, None)
    ladder = None
    if solver is not None and size is not None and not sweep:
        ladder = attempt(ladder_of, spec, size, solver, preset)
    if objective is not None and ladder is not None and spec.parametrization is None \
            and spec.min_size is None and preset is None and not spec.carry_moments:
        objective = dataclasses.replace(
            objective, parametrization=multiscale.DEFAULT_PARAMETRIZATION)
    if objective is not None and solver is not None and "optimizer" not in errors:
        try:
            check_solver(objective, solver.optimizer)
        except ValueError as e:
            errors["optimizer"] = str(e)
    weights = None
    if objective is not None:
        kw = attempt(weights_kwargs, spec, objective, mix, n_styles)
        if kw is not None:
            weights = loss_weights(objective, n_styles=n_styles, **kw)
    if errors:
        raise SpecError(errors)
    return Run(spec, size, objective, weights, solver, mix, ladder or Single(), init, seed,
               spec.preserve_color, spec.color_match or "cholesky", preset)
