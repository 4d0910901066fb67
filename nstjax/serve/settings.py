"""The page's form as a :class:`~nstjax.run.spec.RunSpec`, each message beside its field.

The form's names are the command line's (``style_weight`` is ``--style-weight``), so a
run's sidecar ``arguments`` fill the form again and ``nstjax stylize --config`` repeats
it.  The form is read and resolved by :mod:`nstjax.run.spec`, as the command line's flags
are: the same defaults (an empty field is the command's default, the coarse-to-fine ladder
among them) and the same messages, each shown next to the field it concerns.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import nstjax
from nstjax.io.image import DEFAULT_SIZE
from nstjax.objective.config import loss_weights
from nstjax.run import multiscale
from nstjax.run.presets import PRESETS, Preset
from nstjax.run.resolve import DEFAULT_INIT, Run, resolve
from nstjax.run.sidecar import Sidecar
from nstjax.run.spec import RunSpec, SpecError
from nstjax.run.start import INITS
from nstjax.solve.optimize import optimizer_names
from nstjax.solve.solver import Solver

COLORS = ("", "luminance", "histogram")
SWEPT = ("style_weight", "tv_weight")     # what the page's sweep may vary
# the page's fields that a preset fills when chosen (the rest of its recipe it carries)
PRESET_FIELDS = ("style_loss", "style_weight", "content_weight", "tv_weight", "style_layers",
                 "content_layers", "optimizer", "iters", "lr", "init")
FORM_FIELDS = ("size", "seed", "preserve_color", "preset", *PRESET_FIELDS)


class RunSettings(NamedTuple):
    """A validated form.

    Attributes:
      run: the resolved :class:`~nstjax.run.spec.Run` (objective, weights, solver, ladder,
        start, seed, colour, preset).
      sweep: ``{name: [values]}`` for a sweep (empty for a single run).
      arguments: the form's values under the command line's names (the sidecar's).
    """

    run: Run
    sweep: dict
    arguments: dict

    size = property(lambda self: self.run.size)
    objective = property(lambda self: self.run.objective)
    solver = property(lambda self: self.run.solver)
    weights = property(lambda self: self.run.weights)
    preserve_color = property(lambda self: self.run.preserve_color)
    init = property(lambda self: self.run.init)
    seed = property(lambda self: self.run.seed)
    ladder = property(lambda self: self.run.ladder)
    preset = property(lambda self: self.run.preset.name if self.run.preset else None)


def default_size(max_size: int) -> int:
    """The long edge of a run that gives none: the command line's, or this server's limit."""
    return min(DEFAULT_SIZE, max_size)


def defaults(max_size: int = 1024) -> dict:
    """The form's initial values (the command line's defaults; an empty field is the
    default) and its choices."""
    run = resolve(RunSpec(), max_size=max_size)
    objective, solver, w = run.objective, run.solver, run.weights
    first, between, last = multiscale.DEFAULT_SCALE_ITERS
    return {
        "values": {"size": run.size, "style_loss": ",".join(objective.style_losses),
                   "style_weight": float(w.style_weight),
                   "content_weight": float(w.content_weight),
                   "tv_weight": float(w.tv_weight),
                   "style_layers": ",".join(objective.style_layers),
                   "content_layers": ",".join(objective.content_layers),
                   "preserve_color": "", "optimizer": solver.optimizer,
                   "iters": "", "lr": solver.lr, "init": DEFAULT_INIT, "seed": 0,
                   "sweep_style_weight": "10,100,1000", "sweep_tv_weight": "", "preset": ""},
        "placeholders": {"iters": f"{first}/{between}/{last} coarse to fine ({Solver().max_iter} "
                         "in a sweep)"},
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


def _sweep(form, run: Run, errors) -> dict:
    values = {}
    base = {k: v for k, v in run.weights._asdict().items() if k in SWEPT}
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
                loss_weights(run.objective, n_styles=1, **{**base, name: v})
        except ValueError as e:
            errors[field] = str(e)
            continue
        values[name] = items
    if not errors and (not values or max(len(v) for v in values.values()) < 2):
        errors["sweep_style_weight"] = "give two or more values to sweep, e.g. 10,100,1000"
    return values


def _given(form, max_size: int) -> dict:
    """The form's fields, less those its preset refuses that still hold the page's default
    (the page sends every field; the command line would not have given them)."""
    given = {k: form.get(k) for k in FORM_FIELDS}
    preset = PRESETS.get(str(form.get("preset") or "").strip())
    if preset is not None:
        shown = defaults(max_size)["values"]
        for name in preset.refuses:
            if name in given and str(given[name]).strip() == str(shown.get(name, "")).strip():
                given[name] = None
    return given


def parse_form(form, *, sweep: bool = False, max_size: int = 1024) -> tuple[RunSettings | None,
                                                                             dict]:
    """``(settings, {})`` from the page's form, or ``(None, {field: message})``.

    Args:
      form: the submitted values (strings) under the command line's names.
      sweep: also read ``sweep_style_weight``/``sweep_tv_weight`` (lists of values).
      max_size: the largest long edge this server computes.
    """
    spec, errors = RunSpec.read(_given(form, max_size))
    try:
        run = resolve(spec, max_size=max_size, sweep=sweep, init_files=False)
    except SpecError as e:
        for k, v in e.errors.items():
            errors.setdefault(k, v)
        run = None
    values = _sweep(form, run, errors) if sweep and run is not None else {}
    if errors:
        return None, errors
    arguments = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.given().items()}
    arguments.update(size=run.size, seed=run.seed, init=run.init)
    return RunSettings(run=run, sweep=values, arguments=arguments), {}


def form_from_sidecar(record) -> dict:
    """The form's values from a sidecar's ``arguments`` (a reopened run); unknown keys and
    values that are not plain numbers or text are left out."""
    saved = Sidecar.parse(record).arguments
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
