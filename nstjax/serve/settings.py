"""The page's form as the library's objects, each message beside the field it concerns.

The form's names are the command line's (``style_weight`` is ``--style-weight``), so a
run's sidecar ``arguments`` fill the form again and ``nstjax stylize --config`` repeats
it.  The library validates: :class:`~nstjax.Objective`, :func:`~nstjax.loss_weights`
and :class:`~nstjax.Solver` raise ``ValueError`` with a message, shown next to the field
that caused it; the defaults shown in the page are theirs.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import nstjax
from nstjax.io.image import DEFAULT_SIZE, MIN_SIZE
from nstjax.losses import parse_style_spec
from nstjax.objective.config import Objective, loss_weights
from nstjax.run.multiscale import scale_iterations, size_ladder
from nstjax.run.presets import PRESETS, Preset
from nstjax.run.start import INITS, SWEEP_INITS, check_solver
from nstjax.run.transfer import MAX_SEED
from nstjax.solve.optimize import optimizer_names
from nstjax.solve.solver import Solver

COLORS = ("", "luminance", "histogram")
SWEPT = ("style_weight", "tv_weight")     # what the page's sweep may vary
# the page's fields that a preset fills when chosen (the rest of its recipe it carries)
PRESET_FIELDS = ("style_loss", "style_weight", "content_weight", "tv_weight", "style_layers",
                 "content_layers", "optimizer", "iters", "lr", "init")


class RunSettings(NamedTuple):
    """A validated form.

    Attributes:
      size: long edge of the output, pixels.
      objective, solver: the library's static settings.
      weights: keyword arguments of :func:`nstjax.loss_weights` (``n_styles`` aside).
      preserve_color: ``None``, ``"luminance"`` or ``"histogram"``.
      init: a named start image.
      seed: the PRNG seed.
      sweep: ``{name: [values]}`` for a sweep (empty for a single run).
      arguments: the form's values under the command line's names (the sidecar's).
      preset: the ``--preset`` chosen, or None.
      ladder: for a preset with a coarse-to-fine schedule, :func:`nstjax.stylize_multiscale`'s
        ``min_size``, ``iters``, ``factor``, ``add_detail``, ``carry_moments`` and
        ``content_decay``; else None.
    """

    size: int
    objective: Objective
    solver: Solver
    weights: dict
    preserve_color: str | None
    init: str
    seed: int
    sweep: dict
    arguments: dict
    preset: str | None = None
    ladder: dict | None = None


def default_size(max_size: int) -> int:
    """The long edge of a run that gives none: the command line's, or this server's limit."""
    return min(DEFAULT_SIZE, max_size)


def defaults(max_size: int = 1024) -> dict:
    """The form's initial values (the library's defaults) and its choices."""
    objective, solver = Objective(), Solver()
    w = loss_weights(objective, n_styles=1)
    return {
        "values": {"size": default_size(max_size), "style_loss": ",".join(objective.style_losses),
                   "style_weight": float(w.style_weight),
                   "content_weight": float(w.content_weight),
                   "tv_weight": float(w.tv_weight),
                   "style_layers": ",".join(objective.style_layers),
                   "content_layers": ",".join(objective.content_layers),
                   "preserve_color": "", "optimizer": solver.optimizer,
                   "iters": solver.max_iter, "lr": solver.lr, "init": "content", "seed": 0,
                   "sweep_style_weight": "10,100,1000", "sweep_tv_weight": "", "preset": ""},
        "choices": {"optimizer": list(optimizer_names()), "init": list(INITS),
                    "preserve_color": list(COLORS),
                    "style_loss": list(nstjax.style_loss_names()),
                    "preset": ["", *PRESETS]},
        "presets": {name: {"summary": p.summary, "values": preset_values(p)}
                    for name, p in PRESETS.items()},
        "preset_fields": list(PRESET_FIELDS),
    }


def preset_values(preset: Preset) -> dict:
    """The page's fields that ``preset`` sets, as the form writes them."""
    return {k: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else v
            for k, v in preset.settings.items() if k in PRESET_FIELDS}


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def _number(form, name, kind, errors, *, low=None, high=None):
    text = str(form.get(name, "")).strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        errors[name] = f"not {'a whole number' if kind is int else 'a number'}: {text!r}"
        return None
    if low is not None and value < low or high is not None and value > high:
        errors[name] = f"must be from {low} to {high}, not {value}"
        return None
    return value


def _objective(form, errors, base: Objective = Objective()) -> tuple[Objective | None,
                                                                    tuple | None]:
    """The :class:`Objective` (``base``'s, the form's fields replaced); each field tried
    alone first, so a message names its field."""
    kw, mix = {}, None
    spec = str(form.get("style_loss", "")).strip()
    try:
        if spec:
            kw["style_losses"], mix = parse_style_spec(spec)
            Objective(style_losses=kw["style_losses"])
    except ValueError as e:
        errors["style_loss"] = str(e)
    for name in ("style_layers", "content_layers"):
        layers = tuple(_words(str(form.get(name, ""))))
        if layers:
            try:
                Objective(**{name: layers})
                kw[name] = layers
            except ValueError as e:
                errors[name] = str(e)
    if errors:
        return None, None
    try:
        return dataclasses.replace(base, **kw), mix
    except ValueError as e:
        errors["style_loss"] = str(e)
        return None, None


def _solver(form, errors, base: Solver = Solver()) -> Solver | None:
    kw = {}
    optimizer = str(form.get("optimizer", "")).strip()
    if optimizer:
        kw["optimizer"] = optimizer
    for name, field, kind in (("iters", "max_iter", int), ("lr", "lr", float)):
        value = _number(form, name, kind, errors)
        if value is not None:
            kw[field] = value
    for name, field in (("optimizer", "optimizer"), ("iters", "max_iter"), ("lr", "lr")):
        if field in kw and name not in errors:
            try:
                Solver(**{field: kw[field]})
            except ValueError as e:
                errors[name] = str(e)
    if errors:
        return None
    return dataclasses.replace(base, **kw)


def _weights(form, objective, mix, errors, base: dict | None = None) -> dict:
    kw = {**(base or {}), "style_mix": mix if mix is not None or not base
          else base.get("style_mix")}
    for name in ("style_weight", "content_weight", "tv_weight"):
        value = _number(form, name, float, errors)
        if value is not None:
            try:
                loss_weights(objective, n_styles=1, **{**kw, name: value})
                kw[name] = value
            except ValueError as e:
                errors[name] = str(e)
    return kw


def _sweep(form, objective, weights, errors) -> dict:
    values = {}
    for name in SWEPT:
        field = f"sweep_{name}"
        text = str(form.get(field, "")).strip()
        if not text:
            continue
        try:
            items = [float(w) for w in _words(text)]
        except ValueError:
            errors[field] = f"not a list of numbers: {text!r}"
            continue
        try:
            for v in items:
                loss_weights(objective, n_styles=1, **{**weights, name: v})
        except ValueError as e:
            errors[field] = str(e)
            continue
        values[name] = items
    if not errors and (not values or max(len(v) for v in values.values()) < 2):
        errors["sweep_style_weight"] = "give two or more values to sweep, e.g. 10,100,1000"
    return values


def parse_form(form, *, sweep: bool = False, max_size: int = 1024) -> tuple[RunSettings | None,
                                                                             dict]:
    """``(settings, {})`` from the page's form, or ``(None, {field: message})``.

    Args:
      form: the submitted values (strings) under the command line's names.
      sweep: also read ``sweep_style_weight``/``sweep_tv_weight`` (lists of values).
      max_size: the largest long edge this server computes.
    """
    errors: dict = {}
    size = _number(form, "size", int, errors, low=MIN_SIZE, high=max_size)
    size = default_size(max_size) if size is None else size
    seed = _number(form, "seed", int, errors, low=0, high=MAX_SEED) or 0
    color = str(form.get("preserve_color", "")).strip()
    if color not in COLORS:
        errors["preserve_color"] = f"one of luminance, histogram (or none), not {color!r}"
    preset, lib = _preset(form, errors, sweep=sweep)
    init = str(form.get("init", "")).strip() or lib.get("init", "content")
    if init not in (SWEEP_INITS if sweep else INITS):
        errors["init"] = f"one of {', '.join(SWEEP_INITS if sweep else INITS)}, not {init!r}"
    if sweep and color:
        errors["preserve_color"] = "a sweep does not preserve colour; choose none"
    objective, mix = _objective(form, errors, lib.get("objective", Objective()))
    solver = _solver(form, errors, lib.get("solver", Solver()))
    weights = (_weights(form, objective, mix, errors, lib.get("weights"))
               if objective is not None else {})
    if preset is not None and preset.method == "nnst" and "content_weight" not in errors:
        share = weights.get("content_weight", preset.settings["content_weight"])
        if not 0.0 <= share <= 1.0:
            errors["content_weight"] = ("NNST's content weight is the share of the current "
                                        f"image in the neighbour search, in [0, 1], not {share}")
    values = _sweep(form, objective, weights, errors) if sweep and objective else {}
    if objective is not None and solver is not None and "optimizer" not in errors:
        try:
            check_solver(objective, solver.optimizer)
        except ValueError as e:
            errors["optimizer"] = str(e)
    if errors:
        return None, errors
    arguments = {"size": size, "seed": seed, "init": init,
                 "preserve_color": color or None, "style_loss": form.get("style_loss") or None,
                 "style_layers": _words(str(form.get("style_layers", ""))) or None,
                 "content_layers": _words(str(form.get("content_layers", ""))) or None,
                 "optimizer": solver.optimizer, "iters": solver.max_iter, "lr": solver.lr,
                 "preset": preset.name if preset else None,
                 **{k: v for k, v in weights.items() if k in PRESET_FIELDS}}
    ladder = None if sweep else _ladder(lib, size, solver)
    return RunSettings(size=size, objective=objective, solver=solver, weights=weights,
                       preserve_color=color or None, init=init, seed=seed, sweep=values,
                       arguments=arguments, preset=preset.name if preset else None,
                       ladder=ladder), {}


def _preset(form, errors, *, sweep: bool) -> tuple[Preset | None, dict]:
    """The chosen preset and its library arguments (``{}`` for none or NNST)."""
    name = str(form.get("preset", "")).strip()
    if not name:
        return None, {}
    if name not in PRESETS:
        errors["preset"] = f"one of {', '.join(PRESETS)} (or none), not {name!r}"
        return None, {}
    preset = PRESETS[name]
    if preset.method != "objective":
        if sweep:
            errors["preset"] = (f"{name} runs one image at a time: its targets are searched "
                                "anew at each scale, not a swept weight")
        return preset, {}
    return preset, preset.library()


def _ladder(lib: dict, size: int, solver: Solver) -> dict | None:
    """A preset's coarse-to-fine schedule at ``size`` (one rung when its first size is not
    below ``size``, as on the command line)."""
    if lib.get("min_size") is None:
        return None
    min_size = min(int(lib["min_size"]), size)
    sizes = size_ladder(min_size, size, factor=lib["factor"])
    counts = tuple(lib["iters"] or (solver.max_iter,))[:len(sizes)]
    return {"min_size": min_size, "iters": scale_iterations(counts, len(sizes)),
            "factor": lib["factor"], "add_detail": lib["add_detail"],
            "carry_moments": lib["carry_moments"], "content_decay": lib["content_decay"]}


def form_from_sidecar(record) -> dict:
    """The form's values from a sidecar's ``arguments`` (a reopened run); unknown keys and
    values that are not plain numbers or text are left out."""
    saved = record.get("arguments") if isinstance(record, dict) else None
    if not isinstance(saved, dict):
        raise ValueError("not a sidecar of an nstjax run (no \"arguments\")")
    names = set(defaults()["values"])
    out = {}
    if isinstance(saved.get("content"), str):
        out["content_path"] = saved["content"]
    styles = saved.get("style")
    if isinstance(styles, list) and styles and isinstance(styles[0], str):
        out["style_path"] = styles[0]
    for name, value in saved.items():
        if name not in names or value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            value = ",".join(map(str, value))
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def record_of(settings: RunSettings) -> dict:
    """The objective and solver as the sidecar records them."""
    return {"objective": dataclasses.asdict(settings.objective),
            "solver": dataclasses.asdict(settings.solver)}
