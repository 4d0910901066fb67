"""One driver for every optimiser: ``minimize`` in a ``lax.while_loop``, resumable in
chunks (``minimize_init``, ``minimize_continue``, ``minimize_result``).

Pure: the caller decides ``jit`` and ``vmap``.  An optimiser is an
:class:`~nstjax.solve.optimize.Optimizer`; ``fun`` may return auxiliary output beside its
value (``has_aux``), which the driver keeps after every iteration from the evaluations the
optimiser makes anyway.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.solve.optimize import ArrayLike, Optimizer


class Status(enum.IntEnum):
    """Why a solve stopped."""

    MAX_ITER = 0
    CONVERGED = 1      # relative change of the loss below rtol
    THRESHOLD = 2      # loss below threshold
    NON_FINITE = 3     # loss or iterate became NaN/inf; last finite iterate kept
    INTERRUPTED = 4    # the on_step hook asked to stop
    CONVERGED_X = 5    # relative change of the iterate below tol_x


def status_names(status):
    """The :class:`Status` names of a status code or an array of them (nested lists), e.g.
    ``"MAX_ITER"`` or ``["MAX_ITER", "CONVERGED"]``."""
    arr = np.asarray(status)
    if arr.ndim == 0:
        return Status(int(arr)).name
    return [status_names(a) for a in arr]


class OptimizeResult(NamedTuple):
    """Result of :func:`minimize`.

    Attributes:
      x: final (last finite) iterate, same shape as ``x0``, in the box.
      value: ``f32[]`` loss at ``x``.
      history: ``f32[max_iter]`` loss after each iteration; NaN past ``n_iter``.
      n_iter: ``i32[]`` iterations taken.
      status: ``i32[]`` a :class:`Status`.
      aux: with ``has_aux``, ``fun``'s auxiliary output at ``x`` (else ``()``).
      aux_history: each leaf of ``aux`` after each iteration, ``[max_iter, ...]``, NaN past
        ``n_iter`` (else ``()``).
    """

    x: jax.Array
    value: jax.Array
    history: jax.Array
    n_iter: jax.Array
    status: jax.Array
    aux: Any = ()
    aux_history: Any = ()


class SolveState(NamedTuple):
    """Where a solve stands between compiled calls (see :func:`minimize_continue`).

    Attributes:
      n_iter: ``i32[]`` iterations done.
      x: the kept iterate.
      opt_state: the optimizer's state at ``x``.
      value: ``f32[]`` loss at ``x`` (caller's units).
      history: ``f32[max_iter]`` loss after each iteration; NaN past ``n_iter``.
      status: ``i32[]`` :attr:`Status.MAX_ITER` while the solve may go on.
      unit: ``f32[]`` ``|f(x₀)|``, the scale the optimizer sees the loss in.
      aux: ``fun``'s auxiliary output at ``x`` (``()`` without ``has_aux``).
      aux_history: each leaf of ``aux`` after each iteration (``[max_iter, ...]``, NaN past
        ``n_iter``).
      budget: ``i32[]`` this solve's own iteration limit (``max_iter`` unless the caller
        sets a smaller one, e.g. per member of a batch): a solve at its budget is done.
      x_average: the bias-corrected exponential moving average of the kept iterates
        (``x`` itself while the decay is 0), see :func:`minimize_continue`.
    """

    n_iter: jax.Array
    x: jax.Array
    opt_state: Any
    value: jax.Array
    history: jax.Array
    status: jax.Array
    unit: jax.Array
    aux: Any = ()
    aux_history: Any = ()
    budget: Any = None
    x_average: Any = None

    @property
    def running(self):
        """``bool[]``: the solve may take another iteration."""
        return (self.status == Status.MAX_ITER) & (self.n_iter < self.budget)


def _with_aux(fun, has_aux: bool):
    """``fun`` as ``x -> (value, aux)`` (``aux = ()`` when it has none)."""
    return fun if has_aux else (lambda x: (fun(x), ()))


def _scaled(fun, unit):
    """``x -> (value / unit, aux)`` for ``fun(x) -> (value, aux)``."""
    def scaled(x):
        value, aux = fun(x)
        return value / unit, aux
    return scaled


def minimize_init(fun: Callable, x0, optimizer: Optimizer, *, max_iter: int,
                  has_aux: bool = False, normalize: bool = True) -> SolveState:
    """Start a solve at ``x0`` (projected into the box); no iteration is taken.

    With ``has_aux``, ``fun(x) -> (value, aux)`` and the state keeps ``aux`` after every
    iteration (from the evaluations the optimizer makes anyway).  With ``normalize`` (static)
    the optimizer sees ``f / |f(x₀)|``; without, ``f`` itself."""
    fun = _with_aux(fun, has_aux)
    x0 = optimizer.project(x0)
    f0 = jax.lax.stop_gradient(fun(x0)[0])
    unit = jnp.where(jnp.isfinite(f0) & (jnp.abs(f0) > 1e-30) & normalize, jnp.abs(f0), 1.0)
    opt_state, value0, aux0 = optimizer.init(_scaled(fun, unit), x0)
    value0 = value0 * unit
    status0 = jnp.where(jnp.isfinite(value0), Status.MAX_ITER, Status.NON_FINITE)
    aux_history = jax.tree.map(lambda a: jnp.full((max_iter,) + jnp.shape(a), jnp.nan,
                                                  jnp.float32), aux0)
    return SolveState(n_iter=jnp.int32(0), x=x0, opt_state=opt_state, value=value0,
                      history=jnp.full((max_iter,), jnp.nan, jnp.float32),
                      status=status0.astype(jnp.int32), unit=unit, aux=aux0,
                      aux_history=aux_history, budget=jnp.int32(max_iter), x_average=x0)


def minimize_continue(fun: Callable, state: SolveState, optimizer: Optimizer, *,
                      until: ArrayLike, rtol: ArrayLike = 0.0, tol_x: ArrayLike = 0.0,
                      threshold: ArrayLike = -jnp.inf,
                      on_step: Callable | None = None, has_aux: bool = False,
                      average: ArrayLike = 0.0) -> SolveState:
    """Iterate until ``until`` iterations are done in all, or a stop rule fires.

    ``until`` may be traced, so one compiled program runs a solve in chunks: the caller
    reports progress, saves snapshots and checks for Ctrl-C between calls, with no host
    callback inside the program (JAX never writes a program with callbacks to the
    persistent compilation cache). Arguments as in :func:`minimize`.

    ``average`` (traced, in [0, 1)) is the decay ``β`` of the moving average of the
    iterates kept in ``state.x_average``: after ``n`` iterations it is
    ``(1 − β) Σ_{k=0..n} β^{n−k} x_k / (1 − β^{n+1})``, the bias-corrected average of
    Adam's moments (Kingma & Ba 2015, Algorithm 1) applied to the iterate, as
    crowsonkb/style-transfer-pytorch outputs it; ``β = 0`` keeps ``x``.
    """
    scaled = _scaled(_with_aux(fun, has_aux), state.unit)
    max_iter = state.history.shape[0]
    until = jnp.minimum(jnp.minimum(until, max_iter), state.budget)

    def cond(carry):
        return (carry.n_iter < until) & (carry.status == Status.MAX_ITER)

    def body(carry):
        i, x, opt_state, value, history, _, unit, aux, aux_history, budget, x_avg = carry
        x_new, opt_state_new, value_new, aux_new = optimizer.step(scaled, x, opt_state)
        value_new = value_new * unit
        finite = jnp.isfinite(value_new) & jnp.all(jnp.isfinite(x_new))
        # A non-finite step is discarded: keep the last finite iterate and its loss.
        x_keep = jnp.where(finite, x_new, x)
        value_keep = jnp.where(finite, value_new, value)
        opt_state_keep = jax.tree.map(lambda a, b: jnp.where(finite, a, b), opt_state_new,
                                      opt_state)
        aux_keep = jax.tree.map(lambda a, b: jnp.where(finite, a, b), aux_new, aux)
        history = history.at[i].set(value_new.astype(jnp.float32))
        aux_history = jax.tree.map(lambda h, a: h.at[i].set(a.astype(h.dtype)), aux_history,
                                   aux_new)
        rel_f = jnp.abs(value_new - value) <= rtol * jnp.abs(value)
        rel_x = jnp.linalg.norm((x_new - x).ravel()) <= tol_x * jnp.linalg.norm(x.ravel())
        stop = jnp.asarray(False) if on_step is None else on_step(i + 1, value_keep, x_keep)
        status = jnp.select(
            [~finite, value_new < threshold, rel_f & (rtol > 0), rel_x & (tol_x > 0), stop],
            [Status.NON_FINITE, Status.THRESHOLD, Status.CONVERGED, Status.CONVERGED_X,
             Status.INTERRUPTED], Status.MAX_ITER).astype(jnp.int32)
        rate = (1.0 - average) / (1.0 - average ** (i + 2).astype(jnp.float32))
        x_avg = jnp.where(average > 0, x_avg + rate * (x_keep - x_avg), x_keep)
        return SolveState(i + 1, x_keep, opt_state_keep, value_keep, history, status, unit,
                          aux_keep, aux_history, budget, x_avg)

    return jax.lax.while_loop(cond, body, state)


def minimize_result(fun: Callable, state: SolveState, optimizer: Optimizer, *,
                    has_aux: bool = False, average: ArrayLike = 0.0,
                    branchless: bool = False) -> OptimizeResult:
    """The :class:`OptimizeResult` of a solve: unbounded optimizers' iterate is projected
    into the box and ``fun`` evaluated there; with ``average > 0`` the result is the moving
    average of the iterates (:func:`minimize_continue`), evaluated once more.

    ``branchless`` (static) evaluates ``fun`` always and selects, for use under ``vmap``:
    there a ``lax.cond`` on a batched predicate becomes a select whose operands are all
    batched, everything ``fun`` closes over included (the network's weights, once per
    member).  Without it the evaluation happens only when needed."""
    x, value, aux = state.x, state.value, state.aux
    averaged = not (isinstance(average, (int, float)) and average == 0)
    if averaged or not optimizer.bounded:
        keep = state.status == Status.NON_FINITE
        use_average = (jnp.asarray(average) > 0) & ~keep
        x = optimizer.project(jnp.where(use_average, state.x_average, x) if averaged else x)
        evaluate = use_average | (~keep & (not optimizer.bounded))
        if branchless:
            fresh = _with_aux(fun, has_aux)(x)
            value, aux = jax.tree.map(lambda new, old: jnp.where(evaluate, new, old),
                                      fresh, (value, aux))
        else:
            value, aux = jax.lax.cond(evaluate, lambda: _with_aux(fun, has_aux)(x),
                                      lambda: (value, aux))
    return OptimizeResult(x=x, value=value, history=state.history, n_iter=state.n_iter,
                          status=state.status, aux=aux, aux_history=state.aux_history)


def minimize(fun: Callable, x0, optimizer: Optimizer, *, max_iter: int,
             rtol: ArrayLike = 0.0, tol_x: ArrayLike = 0.0,
             threshold: ArrayLike = -jnp.inf,
             on_step: Callable | None = None, has_aux: bool = False,
             average: ArrayLike = 0.0) -> OptimizeResult:
    """Minimise ``fun`` from ``x0`` with ``optimizer`` inside one ``lax.while_loop``.

    Pure: call it inside ``jit`` and ``vmap`` it for sweeps. ``rtol``, ``tol_x`` and
    ``threshold`` may be traced; ``max_iter`` is static. To run a solve in chunks (progress
    between compiled calls), use :func:`minimize_init`, :func:`minimize_continue` and
    :func:`minimize_result`, of which this is the composition.

    The optimizer sees ``f / |f(x₀)|``: style objectives reach 1e11-1e15, where L-BFGS-B's
    first steps stall and L-BFGS's first line search overshoots. Values reported back are
    in the caller's units.

    Stopping, whichever comes first: ``max_iter`` iterations; ``|f_k − f_{k−1}| ≤
    rtol·|f_{k−1}|`` (li2017 §4 stops at 0.5%); ``‖x_k − x_{k−1}‖ ≤ tol_x·‖x_{k−1}‖``;
    ``f_k < threshold``; a non-finite loss or iterate (the step is discarded and the last
    finite iterate kept); ``on_step`` returning ``True``.

    Args:
      fun: ``x -> f32[]``.
      x0: initial point; projected onto the optimizer's box first.
      optimizer: an :class:`Optimizer`, e.g. from :func:`make_optimizer`.
      max_iter: iteration limit (static).
      rtol: relative change of the loss to stop at (0 disables).
      tol_x: relative change of the iterate to stop at (0 disables).
      threshold: stop when the loss falls below it.
      on_step: optional traced function ``(i, value, x) -> bool[]`` called after every
        iteration with the iterations done (1-based), the loss (caller's units) and the
        kept iterate; ``True`` stops the loop with :attr:`Status.INTERRUPTED`. A host
        callback inside it keeps the program out of the persistent compilation cache.
      has_aux: ``fun(x) -> (value, aux)``; the result then has ``aux`` at ``x`` and
        ``aux_history`` after every iteration, from the evaluations the optimizer makes
        anyway (``optax-lbfgs``, whose line search takes a plain function, pays one more
        forward pass per iteration for it).
      average: decay of a moving average of the iterates returned instead of the last
        iterate (0 disables; see :func:`minimize_continue`), evaluated once more at the end.

    Returns:
      An :class:`OptimizeResult`; ``x`` is in the box (unbounded optimizers' final iterate
      is projected and ``value`` evaluated there).
    """
    state = minimize_init(fun, x0, optimizer, max_iter=max_iter, has_aux=has_aux)
    state = minimize_continue(fun, state, optimizer, until=max_iter, rtol=rtol, tol_x=tol_x,
                              threshold=threshold, on_step=on_step, has_aux=has_aux,
                              average=average)
    return minimize_result(fun, state, optimizer, has_aux=has_aux, average=average)
