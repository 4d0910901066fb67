"""Feature inversion: from a seeded start, match one statistic of one image at chosen layers.

The papers' way of looking at a style representation (stylerep §1.1 after Mahendran and
Vedaldi; li2017 Fig. 1): start from noise (or li2017's grey), optimise only a style
statistic at one layer or a cumulative set of layers, or only a content loss at one layer,
and look at what comes out.

A grid of *probes* (rows: a style method, a fusion ``"bn:0.5,mmd-poly:0.5"``, moments with
``N`` moments ``"moments@N"``, stylerep's eq. 1.6 summed ``"channel-mmd@sum"``, or
``"content"``) × *layer sets* (columns) runs as one compiled, ``vmap``-ped program: the
:class:`~nstjax.Objective` holds every method and layer of the grid, and each cell is a
member of the batch whose traced :class:`~nstjax.LossWeights` switch on its method (the
fusion weights ``style_mix``), its layers (``style_layer_weights`` or
``content_layer_weights``) and its hyper-parameters.  The steps are
:func:`nstjax.run.transfer.transfer_init` / ``transfer_advance`` / ``transfer_finish`` driven
by :func:`nstjax.run.transfer.drive`, as sweeps are.

What a cell minimises: a single method unscaled (``λ = 1``, style weight 1), so its value
*is* the statistic's loss and stylerep's threshold θ applies to it; a fusion with the
registry's λ (li2017 §4; paper λ under ``normalization="paper"``); a content cell
``L_content`` alone.  Each cell may have its own iteration budget (stylerep Table 1.1): a
member that reaches its budget stops there with status ``MAX_ITER``.

References:
  stylerep §1.1-1.4 (inversion, eq. 1.2-1.7, Table 1.1); li2017 §4 and Fig. 1
  (methods × cumulative layers); Mahendran and Vedaldi 2015 (content inversion).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_arrays import check_image_array
from nstjax.losses import parse_style_spec
from nstjax.model.layers import VGGWeights
from nstjax.model.vgg import (
    canonical_layer,
    canonical_layers,
    extract_features,
    layer_depth,
)
from nstjax.objective.config import Objective, default_scale, loss_weights
from nstjax.objective.terms import compute_targets
from nstjax.run import hooks
from nstjax.run.start import check_solver
from nstjax.run.transfer import (
    MEMBER_AXES,
    Problem,
    Program,
    drive,
    initial_image,
    transfer_advance,
    transfer_finish,
    transfer_init,
)
from nstjax.solve.minimize import status_names
from nstjax.solve.solver import Solver

STYLEREP_LAYERS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2")      # stylerep eq. 1.7
LI2017_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLEREP_THETA = 1e-5
STYLEREP_EXTENSION = 1000
STYLEREP_EXTENSIONS = 240
# stylerep Table 1.1, iterations per layer of R for each loss (moments by N).
STYLEREP_BUDGETS = {
    "gram-gamma": (100_000, 150_000, 200_000, 250_000),
    "channel-mmd@sum": (100_000, 150_000, 200_000, 250_000),
    "moments@1": (20_000, 40_000, 60_000, 80_000),
    "moments@2": (40_000, 80_000, 120_000, 160_000),
    "moments@3": (60_000, 120_000, 180_000, 240_000),
    "moments@4": (100_000, 200_000, 300_000, 400_000),
}


class Probe(NamedTuple):
    """What one row of the grid matches.

    Attributes:
      label: as given (``"gram"``, ``"bn:0.5,mmd-poly:0.5"``, ``"moments@2"``, ``"content"``).
      methods: registered style methods (``()`` for a content probe).
      mix: their fusion weights.
      hyper: ``((name, value), ...)`` hyper-parameter overrides, e.g. ``moments.w3 = 0``.
      sum_pairs: stylerep eq. 1.6 as written: ``channel-mmd`` summed over the ``P`` pairs of
        each layer (our ``channel-mmd`` averages them), i.e. layer weight ``P``.
    """

    label: str
    methods: tuple
    mix: tuple
    hyper: tuple = ()
    sum_pairs: bool = False

    @property
    def is_content(self) -> bool:
        return not self.methods


def parse_probe(spec) -> Probe:
    """A :class:`Probe` from ``"gram"``, ``"bn:0.5,mmd-poly:0.5"``, ``"moments@N"`` (the first
    ``N`` moments of stylerep eq. 1.4, ``N`` = 1…4), ``"channel-mmd@sum"`` (eq. 1.6 summed)
    or ``"content"`` (feature inversion); a :class:`Probe` is returned as is.

    Raises:
      ValueError: an unknown method, a bad weight or a bad ``N``.
    """
    if isinstance(spec, Probe):
        return spec
    text = str(spec).strip()
    if text == "content":
        return Probe("content", (), ())
    name, at, option = text.partition("@")
    if at:
        if name == "moments":
            if option not in {str(i) for i in range(1, 5)}:
                raise ValueError(f"{text!r}: moments@N needs N = 1, 2, 3 or 4")
            n = int(option)
            return Probe(text, ("moments",), (1.0,),
                         tuple((f"moments.w{i}", float(i <= n)) for i in range(1, 5)))
        if name == "channel-mmd" and option == "sum":
            return Probe(text, ("channel-mmd",), (1.0,), (), True)
        raise ValueError(f"{text!r}: the only @ forms are moments@N and channel-mmd@sum")
    methods, mix = parse_style_spec(text)
    return Probe(text, methods, mix)


def cumulative_layer_sets(layers: Sequence[str]) -> list[tuple[str, ...]]:
    """``[(l1,), (l1, l2), ...]``: the first k layers (li2017 Fig. 1, "layer 3" = 1-3)."""
    layers = canonical_layers(layers)
    return [layers[:k] for k in range(1, len(layers) + 1)]


def layer_set_label(layers: Sequence[str]) -> str:
    """``"relu3_1"`` for one layer, ``"relu1_1..relu3_1"`` for several."""
    return layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}"


class InversionResult(NamedTuple):
    """Outcome of :func:`invert` (leading axes ``[R, C]``: probes × layer sets).

    Attributes:
      images: ``f32[R, C, H, W, 3]``.
      loss: ``f32[R, C]`` objective of each cell at its image (a single method's: the
        statistic's unscaled loss; see the module docstring).
      initial_loss: ``f32[R, C]`` the same at the start image.
      history: ``f32[R, C, T]`` loss per iteration (NaN past ``n_iter``).
      n_iter, status: ``i32[R, C]`` iterations run and :class:`nstjax.Status`.
      budgets: ``i32[R, C]`` each cell's iteration limit.
      probes: the R :class:`Probe`; layer_sets: the C layer tuples.
      objective: the shared :class:`~nstjax.Objective` (the compile key).
    """

    images: np.ndarray
    loss: np.ndarray
    initial_loss: np.ndarray
    history: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray
    budgets: np.ndarray
    probes: tuple
    layer_sets: tuple
    objective: Objective

    @property
    def status_names(self) -> list:
        """Why each cell stopped, by name, ``[R][C]``."""
        return status_names(self.status)


def grid_objective(probes: Sequence[Probe], layer_sets: Sequence[Sequence[str]], *,
                   normalization: str = "nstjax", pooling: str = "max",
                   resample: bool = False) -> Objective:
    """The one :class:`~nstjax.Objective` holding every method and layer of the grid."""
    layers = tuple(sorted({canonical_layer(l) for s in layer_sets for l in s}, key=layer_depth))
    if not layers:
        raise ValueError("no layers to invert at")
    methods = []
    for p in probes:
        methods += [m for m in p.methods if m not in methods]
    has_content = any(p.is_content for p in probes)
    return Objective(content_layers=layers if has_content else layers[:1], style_layers=layers,
                     style_losses=tuple(methods) or ("gram",), normalization=normalization,
                     pooling=pooling, resample=resample)


def _pairs(vgg, image, objective: Objective) -> dict:
    """``{layer: P = ⌊M/2⌋}``, the pairs of stylerep eq. 1.6 at each style layer."""
    shapes = jax.eval_shape(lambda x: extract_features(vgg, x, objective.style_layers,
                                                       pooling=objective.pooling), image)
    return {l: (s.shape[0] * s.shape[1]) // 2 for l, s in shapes.items()}


def cell_weights(objective: Objective, probe: Probe, layers: Sequence[str], *,
                 pairs: dict | None = None):
    """The :class:`~nstjax.LossWeights` of one cell: only ``probe`` at ``layers`` counts."""
    o = objective
    chosen = {canonical_layer(l) for l in layers}
    on = lambda names: tuple(float(n in chosen) for n in names)  # noqa: E731
    if probe.is_content:
        return loss_weights(o, content_weight=1.0, style_weight=0.0, tv_weight=0.0,
                            content_layer_weights=on(o.content_layers),
                            style_mix=(0.0,) * len(o.style_losses))
    mix = dict(zip(probe.methods, probe.mix))
    fusion = sum(w > 0 for w in probe.mix) > 1
    scales = tuple(default_scale(m, o.normalization) if fusion else 1.0
                   for m in o.style_losses)
    layer_w = np.asarray(on(o.style_layers))
    if probe.sum_pairs:
        layer_w = layer_w * np.asarray([float(pairs[l]) for l in o.style_layers])
    return loss_weights(o, content_weight=0.0, style_weight=1.0, tv_weight=0.0,
                        content_layer_weights=(0.0,) * len(o.content_layers),
                        style_layer_weights=tuple(layer_w),
                        style_mix=tuple(mix.get(m, 0.0) for m in o.style_losses),
                        style_scales=scales, hyper=dict(probe.hyper))


# ------------------------------------------------------------------------- programs


def _init_within(x0, problem, solver, budget, *, objective):
    """``transfer_init`` with the member's own iteration ``budget`` (stylerep Table 1.1):
    the driver counts a member at its budget as done."""
    state, problem = transfer_init(x0, problem, solver, objective=objective)
    return state._replace(budget=jnp.asarray(budget, jnp.int32)), problem


@functools.lru_cache(maxsize=16)
def _programs(objective: Objective):
    """The three steps, ``vmap``-ped over the members' weights and budgets, compiled."""
    init = jax.vmap(functools.partial(_init_within, objective=objective),
                    in_axes=(None, MEMBER_AXES, None, 0), out_axes=(0, MEMBER_AXES))
    advance = jax.vmap(functools.partial(transfer_advance, objective=objective),
                       in_axes=(0, MEMBER_AXES, None, None))
    finish = jax.vmap(functools.partial(transfer_finish, objective=objective,
                                        branchless=True),
                      in_axes=(0, MEMBER_AXES, None))
    return jax.jit(init), jax.jit(advance), jax.jit(finish)


def invert(vgg: VGGWeights, image, probes: Sequence, layer_sets: Sequence[Sequence[str]], *,
           key, solver: Solver = Solver(), init: str = "uniform",
           normalization: str = "nstjax", pooling: str = "max", resample: bool = False,
           budgets=None, chunk: int | None = None,
           callbacks: hooks.Callbacks | None = None) -> InversionResult:
    """Invert ``image``'s statistics: every probe at every layer set, batched.

    Args:
      vgg: the network's parameters.
      image: ``f32[H, W, 3]`` RGB in [0, 1], the image whose statistics are matched.
      probes: R probe specs (see :func:`parse_probe`) or :class:`Probe`.
      layer_sets: C tuples of layer names (one layer each, or
        :func:`cumulative_layer_sets`).
      key: PRNG key; every cell starts from the same image drawn from it, so a seed gives
        the same grid.
      solver: the :class:`~nstjax.Solver`; its ``max_iter`` is every cell's budget unless
        ``budgets`` is given.
      init: ``"uniform"`` (stylerep), ``"noise"`` (the mean colour, Gaussian), ``"grey"``
        (li2017's code) or ``"content"`` (the image).
      normalization, pooling, resample: of the :class:`~nstjax.Objective`.
      budgets: optional ``int[R, C]`` iteration limit per cell (stylerep Table 1.1).
      chunk: cells per compiled call (default: all; give fewer to bound memory).
      callbacks: ``progress(iterations, losses)`` per chunk of iterations, ``should_stop``.

    Returns:
      An :class:`InversionResult`.

    Raises:
      ValueError: a bad probe, layer, budget or solver (``resample`` with a line search).
    """
    probes = tuple(parse_probe(p) for p in probes)
    layer_sets = tuple(canonical_layers(s) for s in layer_sets)
    if not probes or not layer_sets:
        raise ValueError("give at least one probe and one layer set")
    image = check_image_array(image, "image")
    objective = grid_objective(probes, layer_sets, normalization=normalization,
                               pooling=pooling, resample=resample)
    check_solver(objective, solver.optimizer)
    r, c = len(probes), len(layer_sets)
    budgets = np.full((r, c), solver.max_iter) if budgets is None else np.asarray(budgets)
    if budgets.shape != (r, c) or np.any(budgets < 1):
        raise ValueError(f"budgets must be {r}×{c} positive iteration counts")
    budgets = budgets.astype(np.int64)
    solver = dataclasses.replace(solver, max_iter=int(budgets.max()))
    pairs = _pairs(vgg, image, objective) if any(p.sum_pairs for p in probes) else None
    cells = [cell_weights(objective, p, s, pairs=pairs) for p in probes for s in layer_sets]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *cells)
    flat_budgets = jnp.asarray(budgets.reshape(-1), jnp.int32)

    targets = compute_targets(vgg, image, [image], objective=objective)
    k_init, k_loss = jax.random.split(key)
    x0 = initial_image(image, [image], init, k_init)
    init_p, advance_p, finish_p = _programs(objective)
    k = r * c
    chunk = max(1, min(chunk or k, k))
    callbacks = hooks.Callbacks(progress=callbacks.progress,
                                should_stop=callbacks.should_stop) if callbacks else None
    outs = []
    for start in range(0, k, chunk):
        idx = np.arange(start, min(start + chunk, k))
        pad = np.concatenate([idx, np.full(chunk - len(idx), idx[-1])])      # fixed shape
        lw = jax.tree.map(lambda a: a[pad], stacked)
        bud = flat_budgets[pad]
        program = Program(
            init=lambda lw=lw, bud=bud: init_p(x0, Problem(vgg, targets, lw, k_loss), solver,
                                               bud),
            advance=lambda state, p, until: advance_p(state, p, solver, until),
            finish=lambda state, p: finish_p(state, p, solver))
        res, _, _ = drive(program, solver.max_iter, callbacks)
        f0 = jax.vmap(lambda w: _initial_loss(x0, vgg, targets, w, k_loss, objective))(lw)
        outs.append(jax.tree.map(lambda a: np.asarray(a)[: len(idx)], (res, f0)))
    res, f0 = jax.tree.map(lambda *a: np.concatenate(a), *outs)
    grid = lambda a: a.reshape((r, c) + a.shape[1:])  # noqa: E731
    return InversionResult(images=grid(res.x), loss=grid(res.value), initial_loss=grid(f0),
                           history=grid(res.history), n_iter=grid(res.n_iter),
                           status=grid(res.status), budgets=budgets, probes=probes,
                           layer_sets=layer_sets, objective=objective)


@functools.partial(jax.jit, static_argnames=("objective",))
def _initial_loss(x0, vgg, targets, weights, key, objective):
    from nstjax.objective.terms import total_loss
    return total_loss(x0, vgg, targets, weights, key, objective=objective)


# ----------------------------------------------------------------------- procedures


class Procedure(NamedTuple):
    """A paper's inversion set-up, ready for :func:`invert` (``**procedure.kwargs()``)."""

    probes: tuple
    layer_sets: tuple
    solver: Solver
    init: str
    normalization: str
    resample: bool
    budgets: np.ndarray | None
    pooling: str = "max"

    def kwargs(self) -> dict:
        return dict(solver=self.solver, init=self.init, normalization=self.normalization,
                    resample=self.resample, budgets=self.budgets, pooling=self.pooling)


def stylerep_procedure(*, budget_scale: float = 1.0, probes: Sequence | None = None,
                        layers: Sequence[str] = STYLEREP_LAYERS) -> Procedure:
    """stylerep §1.3: Adam (η = 1e-3, β = (0.9, 0.999)) from uniform noise, one layer of R at
    a time (eq. 1.7), stop when the unscaled style loss is below θ = 1e-5, budgets of
    Table 1.1 extended by 1000 iterations up to 240 times (a threshold that can fire at any
    iteration makes "extend while above θ" the same as a budget ``ι + 240·1000``).  As the
    paper: Adam sees the raw loss (``Solver(normalize=False)``) and pixels may leave [0, 1]
    (``box=False``; the saved grid is clipped to 8 bits).

    Probes: ``gram-gamma`` (eq. 1.2-1.3), ``moments@1..4`` (eq. 1.4-1.5) and
    ``channel-mmd@sum`` (eq. 1.6 as written, summed over pairs).  ``budget_scale`` shrinks
    every budget and extension (e.g. 1e-3 for a look at small sizes); 1 is the paper's.
    """
    if not (budget_scale > 0) or not math.isfinite(budget_scale):
        raise ValueError(f"budget scale must be > 0, got {budget_scale}")
    probes = tuple(parse_probe(p) for p in (probes or STYLEREP_BUDGETS))
    layers = canonical_layers(layers)
    budgets = np.zeros((len(probes), len(layers)), np.int64)
    extra = STYLEREP_EXTENSIONS * STYLEREP_EXTENSION
    for i, p in enumerate(probes):
        table = STYLEREP_BUDGETS.get(p.label, STYLEREP_BUDGETS["gram-gamma"])
        for j, layer in enumerate(layers):
            base = table[STYLEREP_LAYERS.index(layer)] if layer in STYLEREP_LAYERS else table[-1]
            budgets[i, j] = max(1, round((base + extra) * budget_scale))
    solver = Solver("adam", int(budgets.max()), lr=1e-3, threshold=STYLEREP_THETA, box=False,
                    normalize=False)
    return Procedure(probes, tuple((l,) for l in layers), solver, "uniform", "nstjax", False,
                     budgets)


def li2017_procedure(*, max_iter: int = 1000, lr: float = 0.02, tol_x: float = 0.005,
                      probes: Sequence = ("mmd-linear", "mmd-poly", "mmd-gauss", "bn"),
                      layers: Sequence[str] = LI2017_LAYERS) -> Procedure:
    """li2017 Fig. 1: the four methods × the first k of relu1_1…relu5_1, style loss only.

    As its released code: paper normalisation, grey init, Gaussian pairs drawn anew at
    every evaluation, average pooling, stop when ``‖Δx‖/‖x‖ < 0.5%`` or after 1000
    iterations.  Its
    optimiser (SGD with momentum 0.9, weight decay, a step schedule and gradient clipping,
    in 0-255 units) is replaced by Adam (``lr`` in [0, 1] units), and its relative change
    is measured on the mean-subtracted image, ours on the image in [0, 1].
    """
    solver = Solver("adam", max_iter, lr=lr, tol_x=tol_x)
    return Procedure(tuple(parse_probe(p) for p in probes),
                     tuple(cumulative_layer_sets(layers)), solver, "grey", "paper", True,
                     None, pooling="avg")


# By paper key (docs/methods.md, "The papers"); nstjax invert also takes its old labels.
PROCEDURES = {"stylerep": stylerep_procedure, "li2017": li2017_procedure}
