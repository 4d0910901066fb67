"""One run description: a transfer in the flags' own names, resolved in one place.

The command line (argparse's namespace), the web page's form, a sidecar's ``arguments``
(``--config``, a reopened run), a ``--preset`` and Python all describe a run as a
:class:`RunSpec`, whose fields are the flags' destinations (``style_weight`` is
``--style-weight``; ``None``: the default).  :func:`nstjax.run.resolve.resolve` turns it
into the library's :class:`~nstjax.Objective`, :class:`~nstjax.LossWeights` and
:class:`~nstjax.Solver`, the coarse-to-fine ladder and the start: every default and every
check of a run's settings has its home there.  A bad value is a :class:`SpecError` holding
one message per field, each the line the command line prints, so the page shows the same
words beside the field they concern.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

# field → kind: how a value given as text (the form's) or as argparse's lists is read
_KINDS = {
    "size": "int", "preset": "str", "tile": "str",
    # the objective
    "style_loss": "str", "content_layers": "words", "style_layers": "words",
    "content_loss": "str", "pooling": "str", "auto_scale": "bool", "remat": "str",
    "precision": "str", "normalization": "str", "resample": "bool", "tv_loss": "str",
    "parametrization": "str", "pyramid_levels": "int",
    # its weights
    "content_weight": "float", "style_weight": "float", "tv_weight": "float",
    "style_layer_weights": "numbers", "content_layer_weights": "numbers",
    "style_blend": "numbers", "style_scales": "numbers", "hyper": "words",
    # the solver
    "optimizer": "str", "iters": "int", "history": "int", "lr": "float", "tol": "float",
    "tol_x": "float", "threshold": "float", "average": "float",
    # the start
    "init": "str", "seed": "int",
    # the coarse-to-fine ladder
    "min_size": "int", "scale_iters": "ints", "scale_factor": "float", "add_detail": "bool",
    "content_decay": "float", "carry_moments": "bool",
    # colour
    "preserve_color": "str", "color_match": "str",
}
# the groups of fields: the Objective's own (named as its fields), the Solver's (flag →
# field), loss_weights' (named as its arguments), the ladder's
OBJECTIVE_KEYS = ("content_loss", "pooling", "auto_scale", "remat", "precision",
                  "normalization", "resample", "tv_loss", "parametrization", "pyramid_levels")
SOLVER_KEYS = {"optimizer": "optimizer", "iters": "max_iter", "history": "history_size",
               "lr": "lr", "tol": "rtol", "tol_x": "tol_x", "threshold": "threshold",
               "average": "average"}
WEIGHT_KEYS = ("content_weight", "style_weight", "tv_weight", "style_layer_weights",
               "content_layer_weights", "style_blend", "style_scales")
OBJECTIVE_FIELDS = ("style_loss", "content_layers", "style_layers", *OBJECTIVE_KEYS)
SOLVER_FIELDS = tuple(SOLVER_KEYS)
WEIGHT_FIELDS = (*WEIGHT_KEYS, "hyper")
LADDER_FIELDS = ("scale_iters", "carry_moments", "scale_factor", "add_detail", "content_decay")


def flag(field: str) -> str:
    """``"--style-weight"`` for the field ``"style_weight"``."""
    return "--" + field.replace("_", "-")


class SpecError(ValueError):
    """Bad settings: ``errors`` is ``{field: message}``; the text is the first message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__(next(iter(self.errors.values())))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A transfer's settings, named as ``nstjax stylize``'s flags (``None``: the default).

    Read with :meth:`from_arguments` (any mapping of flag destinations to values: the
    parsed command line, the page's form as text, a sidecar's ``arguments``, a preset's
    settings) and made the library's objects by :func:`resolve`.  The inputs, outputs and
    progress of a run (files, ``--output``, ``--log-every``) are not part of it.
    """

    size: int | None = None
    preset: str | None = None
    tile: str | None = None
    style_loss: str | None = None
    content_layers: tuple[str, ...] | None = None
    style_layers: tuple[str, ...] | None = None
    content_loss: str | None = None
    pooling: str | None = None
    auto_scale: bool | None = None
    remat: str | None = None
    precision: str | None = None
    normalization: str | None = None
    resample: bool | None = None
    tv_loss: str | None = None
    parametrization: str | None = None
    pyramid_levels: int | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    style_layer_weights: tuple[float, ...] | None = None
    content_layer_weights: tuple[float, ...] | None = None
    style_blend: tuple[float, ...] | None = None
    style_scales: tuple[float, ...] | None = None
    hyper: tuple[str, ...] | None = None
    optimizer: str | None = None
    iters: int | None = None
    history: int | None = None
    lr: float | None = None
    tol: float | None = None
    tol_x: float | None = None
    threshold: float | None = None
    average: float | None = None
    init: str | None = None
    seed: int | None = None
    min_size: int | None = None
    scale_iters: tuple[int, ...] | None = None
    scale_factor: float | None = None
    add_detail: bool | None = None
    content_decay: float | None = None
    carry_moments: bool | None = None
    preserve_color: str | None = None
    color_match: str | None = None

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> RunSpec:
        """The spec of ``arguments`` (keys that are not fields are ignored; ``None``, ``""``
        and ``False`` are "not given"); text is read as the field's kind (``"1,2 3"`` for a
        list).  Raises :class:`SpecError`, one message per unreadable field."""
        spec, errors = cls.read(arguments)
        if errors:
            raise SpecError(errors)
        return spec

    @classmethod
    def read(cls, arguments: Mapping[str, Any]) -> tuple[RunSpec, dict]:
        """``(spec of the readable fields, {field: message} of the others)``: as
        :meth:`from_arguments`, for a form that shows every message at once."""
        values, errors = {}, {}
        for name, kind in _KINDS.items():
            value = arguments.get(name)
            if value is None or value is False or (isinstance(value, str) and not value.strip()):
                continue
            try:
                values[name] = _read(name, kind, value)
            except ValueError as e:
                errors[name] = str(e)
        return cls(**values), errors

    def given(self) -> dict:
        """The fields that are set, as ``{field: value}``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    def replace(self, **changes) -> RunSpec:
        return dataclasses.replace(self, **changes)

    def resolve(self, **kw):
        """:func:`nstjax.run.resolve.resolve` of this spec: the library's objects."""
        from nstjax.run.resolve import resolve
        return resolve(self, **kw)


def _words(value) -> list[str]:
    if isinstance(value, (str, int, float)):
        value = [value]
    return [w for v in value for w in str(v).replace(",", " ").split() if w]


def _read(name: str, kind: str, value):
    if kind == "bool":
        if isinstance(value, str):
            if value.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(f"{flag(name)}: not yes or no: {value!r}")
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if kind == "str":
        return str(value).strip()
    if kind == "words":
        return tuple(_words(value))
    if kind in ("int", "float"):
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, bool):
            raise ValueError(f"{flag(name)}: not a number: {value!r}")
        try:
            number = float(text)
        except (TypeError, ValueError):
            what = "a whole number" if kind == "int" else "a number"
            raise ValueError(f"{flag(name)}: not {what}: {value!r}") from None
        if kind == "float":
            return number
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{flag(name)}: not a whole number: {value!r}")
        return int(number)
    items = _words(value)
    try:
        numbers = tuple(float(w) for w in items)
    except ValueError:
        raise ValueError(f"{flag(name)}: not a list of numbers: {' '.join(items)!r}") from None
    if not numbers:
        raise ValueError(f"{flag(name)}: no numbers given")
    if kind == "ints":
        if any(not math.isfinite(n) or n != int(n) for n in numbers):
            raise ValueError(f"{flag(name)}: whole numbers of iterations, please")
        return tuple(int(n) for n in numbers)
    return numbers
