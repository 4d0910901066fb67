"""The driver: a solve in resumable chunks, and :func:`stylize` on top of it.

A solve is three pure steps, each compiled once per objective, solver structure and shape:
:func:`transfer_init` (targets are given; optional automatic scales; the optimiser's state
at the start image), :func:`transfer_advance` (iterate up to a traced iteration count or
until a stop rule fires) and :func:`transfer_finish` (the result and its weighted terms).
:func:`run_transfer` is their composition, for your own ``jit``/``vmap``.

:func:`drive` is the one loop on the host: it advances a solve chunk by chunk, reports
progress, writes snapshots and honours a stop request between chunks.  :func:`stylize`
drives the three steps under ``jit`` for one image, :func:`nstjax.sweep` under
``jit(vmap(...))`` for K settings.  Nothing inside a compiled program calls back to the
host, so JAX's persistent compilation cache keeps every program across runs, and a chunk
lasts about :data:`CHUNK_SECONDS`, so progress is live and Ctrl-C stops a run within that.

What recompiles is the :class:`~nstjax.objective.config.Objective`, the
:class:`~nstjax.solve.solver.Solver`'s static fields and the image shapes; weights, rates, stop
rules, images, keys and callbacks are traced or live on the host.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.io.image_arrays import check_image_array
from nstjax.model.layers import VGGWeights
from nstjax.objective.pyramid import to_image, to_picture, to_variable
from nstjax.objective.config import LossWeights, Objective
from nstjax.objective.config import loss_weights as make_loss_weights
from nstjax.objective.temporal import Temporal, temporal_loss
from nstjax.objective.terms import (
    Targets,
    auto_scales,
    compute_targets,
    objective_terms,
)
from nstjax.run import color
from nstjax.run.hooks import Callbacks
from nstjax.run.result import TransferResult
from nstjax.run.start import (  # noqa: F401  (the start images, re-exported)
    GREY_NOISE,
    GREY_RGB,
    INITS,
    MAX_SEED,
    NOISE_STD,
    as_image_list,
    check_solver,
    initial_image,
)
from nstjax.solve import optimize
from nstjax.solve.minimize import (
    SolveState,
    Status,
    minimize_continue,
    minimize_init,
    minimize_result,
)
from nstjax.solve.solver import Solver
from nstjax.solve.warm import carry_moments

CHUNK_SECONDS = 0.25      # target wall time of one compiled chunk of iterations


class Problem(NamedTuple):
    """What a solve's objective reads besides the image, as one pytree (optimistix's
    ``args``): ``vmap`` over a sweep's members is ``in_axes`` on this one argument, e.g.
    ``Problem(vgg=None, targets=None, weights=0, key=None)``.

    Attributes:
      vgg: the network's parameters.
      targets: from :func:`nstjax.compute_targets`.
      weights: the traced :class:`LossWeights`.
      key: PRNG key of the sampling losses.
      frozen: optional ``f32[H, W, 1]``, 1 where a pixel is held at its start (a tile's
        context margin): no gradient reaches it, so every optimiser leaves it in place.
      temporal: optional :class:`~nstjax.objective.temporal.Temporal`, a video's warped
        earlier outputs: adds the ``"temporal"`` term (Ruder et al. 2016).
    """

    vgg: VGGWeights
    targets: Targets
    weights: LossWeights
    key: jax.Array
    frozen: jax.Array | None = None
    temporal: Temporal | None = None


# Members of a batch (a sweep, an inversion grid) differ only in their loss weights: the one
# batched leaf of the problem, as ``vmap``'s ``in_axes``/``out_axes``.
MEMBER_AXES = Problem(vgg=None, targets=None, weights=0, key=None, frozen=None)


def problem_value(x, problem: Problem, *, objective: Objective):
    """``(total, {"content", "style", "tv"[, "temporal"]})``: the objective at ``x`` and its
    weighted parts (mathur2017 eq. 5; Ruder et al. 2016 eq. 7), the function every solve
    minimises."""
    if problem.frozen is not None:
        x = x + problem.frozen * (jax.lax.stop_gradient(x) - x)
    terms = objective_terms(x, problem.vgg, problem.targets, problem.weights, problem.key,
                            objective=objective)
    total = terms.pop("total")
    if problem.temporal is not None:
        terms["temporal"] = temporal_loss(x, problem.temporal)
        total = total + terms["temporal"]
    return total, terms


def _bound(problem: Problem, solver: Solver, objective: Objective):
    """``fun(z)`` with the problem bound, and the solver's optimiser in the [0, 1] box
    (no box when ``solver.box`` is off, nor on a pyramid's coefficients)."""
    value = functools.partial(problem_value, problem=problem, objective=objective)
    fun = value if objective.parametrization == "pixels" else (
        lambda z: value(to_image(z, objective)))
    box = solver.box and objective.parametrization == "pixels"
    lower, upper = (0.0, 1.0) if box else (-jnp.inf, jnp.inf)
    optimizer = optimize.make_optimizer(solver.optimizer, lower=lower, upper=upper,
                                        history_size=solver.history_size, lr=solver.lr)
    return fun, optimizer


def transfer_init(x0, problem: Problem, solver: Solver, *, objective: Objective,
                  warm_start=None) -> tuple[SolveState, Problem]:
    """Start a solve at ``x0``: ``(state, problem)``, the problem's ``style_scales``
    replaced first when ``objective.auto_scale`` (li2017 §4); ``warm_start``, an earlier
    solve's optimiser state, lends its moments (:func:`nstjax.solve.warm.carry_moments`).
    ``x0`` is an image; the state's variable is :func:`to_variable` of it.  Pure."""
    check_solver(objective, solver.optimizer)
    if warm_start is not None and objective.parametrization != "pixels":
        raise ValueError("carried optimiser moments need the pixels parametrization: a "
                         "pyramid's moments do not resize")
    if problem.frozen is not None and objective.parametrization != "pixels":
        raise ValueError("a frozen margin (tiles) needs the pixels parametrization: a "
                         "pyramid's coarse levels move every pixel")
    if objective.auto_scale:
        problem = problem._replace(weights=problem.weights._replace(style_scales=auto_scales(
            x0, problem.vgg, problem.targets, problem.weights, problem.key,
            objective=objective)))
    fun, optimizer = _bound(problem, solver, objective)
    state = minimize_init(fun, to_variable(x0, objective), optimizer,
                          max_iter=solver.max_iter, has_aux=True, normalize=solver.normalize)
    if warm_start is not None:
        state = state._replace(opt_state=carry_moments(state.opt_state, warm_start))
    return state, problem


def transfer_advance(state: SolveState, problem: Problem, solver: Solver, until, *,
                     objective: Objective) -> SolveState:
    """Iterate until ``until`` (traced) iterations are done or a stop rule fires.  Pure."""
    fun, optimizer = _bound(problem, solver, objective)
    return minimize_continue(fun, state, optimizer, until=until, rtol=solver.rtol,
                             tol_x=solver.tol_x, threshold=solver.threshold, has_aux=True,
                             average=solver.average)


def transfer_finish(state: SolveState, problem: Problem, solver: Solver, *,
                    objective: Objective, branchless: bool = False):
    """``(OptimizeResult, terms)`` of a solve; ``terms`` are the weighted ``content``,
    ``style`` and ``tv`` parts at its image (``result.aux``; ``result.aux_history`` has them
    after every iteration); ``result.x`` is the picture (:func:`to_picture`).  Pure;
    ``branchless`` under ``vmap`` (see :func:`nstjax.solve.minimize.minimize_result`)."""
    fun, optimizer = _bound(problem, solver, objective)
    result = minimize_result(fun, state, optimizer, has_aux=True, average=solver.average,
                             branchless=branchless)
    result = result._replace(x=to_picture(result.x, objective))
    return result, result.aux


def run_transfer(x0, vgg: VGGWeights, targets: Targets, weights: LossWeights, solver: Solver,
                 key, *, objective: Objective):
    """A whole solve from ``x0`` in one pure function, for your own ``jit`` / ``vmap``.

    Args:
      x0: ``f32[H, W, 3]`` start image.
      vgg: the network's parameters.
      targets: from :func:`nstjax.compute_targets`.
      weights: traced :class:`LossWeights`.
      solver: the :class:`Solver` (its static fields are part of the compile key).
      key: PRNG key of the sampling losses.
      objective: the static :class:`Objective`.

    Returns:
      ``(OptimizeResult, terms, weights)``.
    """
    state, problem = transfer_init(x0, Problem(vgg, targets, weights, key), solver,
                                   objective=objective)
    state = transfer_advance(state, problem, solver, solver.max_iter, objective=objective)
    result, terms = transfer_finish(state, problem, solver, objective=objective)
    return result, terms, problem.weights


class Program(NamedTuple):
    """The three compiled steps of a solve with everything but the state and its problem
    bound (:func:`drive` passes ``init``'s problem on, so an automatic scale set at the
    start holds for the whole solve).

    Attributes:
      init: ``() -> (state, problem)``.
      advance: ``(state, problem, until) -> state``.
      finish: ``(state, problem) -> (OptimizeResult, terms)``.
      picture: ``variable -> image`` of a snapshot (:func:`to_picture`; ``None``: the
        variable is the image).
    """

    init: Callable
    advance: Callable
    finish: Callable
    picture: Callable | None = None


# The three steps compiled (JAX's persistent cache keeps them across runs).
init_jit = jax.jit(transfer_init, static_argnames=("objective",))
advance_jit = jax.jit(transfer_advance, static_argnames=("objective",))
finish_jit = jax.jit(transfer_finish, static_argnames=("objective",))
picture_jit = jax.jit(to_picture, static_argnames=("objective",))


def solve_program(x0, problem: Problem, solver: Solver, *, objective: Objective,
                  warm_start=None) -> Program:
    """The compiled steps of one solve from ``x0`` (the programs every single-image
    driver shares: a frozen margin, masks and weights are traced data)."""
    return Program(
        init=lambda: init_jit(x0, problem, solver, objective=objective,
                              warm_start=warm_start),
        advance=lambda state, p, until: advance_jit(state, p, solver, until,
                                                    objective=objective),
        finish=lambda state, p: finish_jit(state, p, solver, objective=objective),
        picture=None if objective.parametrization == "pixels" else
        functools.partial(picture_jit, objective=objective))


def solve(x0, problem: Problem, solver: Solver, callbacks: Callbacks | None = None, *,
          objective: Objective, warm_start=None,
          keep_opt_state: bool = False) -> TransferResult:
    """One solve from ``x0`` driven chunk by chunk (:func:`drive`), as a
    :class:`TransferResult` (with the optimiser's final state when ``keep_opt_state``)."""
    program = solve_program(x0, problem, solver, objective=objective, warm_start=warm_start)
    kept = []
    if keep_opt_state:
        finish = program.finish

        def finish_keeping_state(state, p):
            kept.append(state.opt_state)
            return finish(state, p)

        program = program._replace(finish=finish_keeping_state)
    result, terms, problem = drive(program, solver.max_iter, callbacks)
    return TransferResult(image=result.x, loss=result.value, history=result.history,
                          n_iter=result.n_iter, status=result.status, terms=terms,
                          weights=problem.weights, term_history=result.aux_history,
                          opt_state=kept[0] if kept else None)


def drive(program: Program, max_iter: int, callbacks: Callbacks | None = None, *,
          chunk_seconds: float = CHUNK_SECONDS):
    """Run a solve chunk by chunk on the host: the one loop of every driver.

    After each chunk it calls ``callbacks.progress`` (for a single solve once per iteration
    done, ``(i, loss)``; for a batch once, with the arrays of iterations and losses),
    writes ``callbacks.snapshot`` at multiples of ``snapshot_every`` (single solves) and,
    when ``callbacks.should_stop()``, ends every running member with status
    ``INTERRUPTED``, keeping its current image.  Chunks grow or shrink to last about
    ``chunk_seconds``.

    Returns:
      ``(OptimizeResult, terms, problem)``: ``program.finish``'s result and the problem
      ``program.init`` returned.
    """
    callbacks = callbacks or Callbacks()
    state, problem = program.init()
    reported, chunk = 0, 1
    every = callbacks.every
    while True:
        until = min(reported + chunk, max_iter)
        if every:
            until = min(until, (reported // every + 1) * every)
        started = time.perf_counter()
        state = program.advance(state, problem, np.int32(until))
        n_iter = np.asarray(state.n_iter)        # waits for the chunk
        elapsed = time.perf_counter() - started
        done = int(n_iter.max())
        if callbacks.progress is not None and done > reported:
            history = np.asarray(state.history)
            if n_iter.ndim == 0:
                for i in range(reported + 1, done + 1):
                    callbacks.progress(i, float(history[i - 1]))
            else:
                last = np.take_along_axis(history, np.maximum(n_iter - 1, 0)[:, None], 1)[:, 0]
                callbacks.progress(n_iter, last)
        if callbacks.terms is not None and n_iter.ndim == 0 and done > reported:
            parts = {k: np.asarray(v) for k, v in state.aux_history.items()}
            for i in range(reported + 1, done + 1):
                callbacks.terms(i, {k: float(v[i - 1]) for k, v in parts.items()})
        if every and n_iter.ndim == 0 and done % every == 0 and done > reported:
            # the picture so far: the moving average when the solve averages (else x)
            picture = state.x_average if program.picture is None else \
                program.picture(state.x_average)
            callbacks.snapshot(done, np.asarray(picture))
        running = np.asarray(state.running)
        steps = max(done - reported, 1)
        reported = done
        if not running.any() or done >= max_iter:
            break
        if callbacks.should_stop is not None and callbacks.should_stop():
            status = jnp.where(state.running, jnp.int32(Status.INTERRUPTED), state.status)
            state = state._replace(status=status)
            break
        per_iteration = elapsed / steps
        chunk = int(np.clip(chunk_seconds / max(per_iteration, 1e-6), 1, 4 * steps))
    result, terms = program.finish(state, problem)
    return result, terms, problem


def stylize(vgg: VGGWeights, content, style, *, key, objective: Objective = Objective(),
            weights: LossWeights | None = None, solver: Solver = Solver(),
            init="content", callbacks: Callbacks | None = None, style_masks=None,
            content_mask=None, mask_mode: str = "average", alpha=None,
            preserve_color: str | None = None, color_match: str = "cholesky",
            warm_start=None, keep_opt_state: bool = False) -> TransferResult:
    """Run a whole style transfer: compiled steps driven chunk by chunk (:func:`drive`).

    Args:
      vgg: the network's parameters (:func:`nstjax.load_vgg19`).
      content: ``f32[H, W, 3]`` RGB in [0, 1].
      style: one style image or a sequence of them (blended by ``weights.style_blend``).
      key: PRNG key (noise init and sampling losses).
      objective: the static :class:`Objective`.
      weights: the traced :class:`LossWeights` (default :func:`nstjax.loss_weights`).
      solver: the :class:`Solver`.
      init: ``"content"``, ``"noise"``, ``"style"`` or an ``f32[H, W, 3]`` start image.
      callbacks: optional host :class:`nstjax.Callbacks` (progress, snapshots, stop).
      style_masks, content_mask, mask_mode: spatial control, see
        :func:`nstjax.compute_targets` and :mod:`nstjax.objective.masks`.
      alpha: optional opacity of the content, ``uint8[h, w]`` bytes or ``f32`` in [0, 1]:
        transparent pixels weigh nothing in the content loss nor in the style statistics
        (:mod:`nstjax.objective.alpha`).
      preserve_color: ``None``, ``"luminance"`` (transfer the luminance, keep the
        content's chroma exactly) or ``"histogram"`` (first recolour the styles to the
        content's colour mean and covariance); Gatys et al. 2017 §5, :mod:`nstjax.run.color`.
        Snapshots and the result are final RGB images.
      color_match: ``"cholesky"`` or ``"eigen"``, the linear map of ``"histogram"``.
      warm_start: an earlier result's ``opt_state`` (``keep_opt_state=True``): Adam starts
        with its moments, resized to this image (:func:`nstjax.solve.warm.carry_moments`).
      keep_opt_state: return the optimiser's final state in ``result.opt_state``.

    Returns:
      A :class:`TransferResult`.
    """
    content = check_image_array(content, "content")
    styles = as_image_list(style)
    if preserve_color is not None:
        return color.with_color_control(
            lambda c, s, i, cb: stylize(vgg, c, s, key=key, objective=objective,
                                        weights=weights, solver=solver, init=i, callbacks=cb,
                                        style_masks=style_masks, content_mask=content_mask,
                                        mask_mode=mask_mode, alpha=alpha,
                                        warm_start=warm_start, keep_opt_state=keep_opt_state),
            content, styles, init, callbacks, preserve=preserve_color, method=color_match)
    targets = compute_targets(vgg, content, styles, objective=objective,
                              style_masks=style_masks, content_mask=content_mask,
                              mask_mode=mask_mode, alpha=alpha)
    if weights is None:
        weights = make_loss_weights(objective, n_styles=len(styles))
    k_init, k_loss = jax.random.split(key)
    if isinstance(init, str):
        x0 = initial_image(content, styles, init, k_init)
    else:
        x0 = jnp.asarray(init, jnp.float32)
        if x0.shape != content.shape:
            raise ValueError(f"init image shape {x0.shape} differs from content "
                             f"{content.shape}")
    return solve(x0, Problem(vgg, targets, weights, k_loss), solver, callbacks,
                 objective=objective, warm_start=warm_start, keep_opt_state=keep_opt_state)
