"""Optimisers as data, and one driver that runs any of them in a ``lax.while_loop``.

An :class:`Optimizer` is a named tuple of pure functions (as optax's
``GradientTransformation``), made by a factory registered by name in :data:`OPTIMIZERS`:

* ``plbfgs``: projected L-BFGS (:mod:`nstjax.solve.lbfgs`), every iterate in the box, unit step
  first and a backtracking search only when it does not decrease the objective;
* ``lbfgsb``: jaxopt's L-BFGS-B with the box as bounds (every iterate in the box);
* ``lbfgs``: jaxopt's L-BFGS (zoom line search), unconstrained; the result is clipped;
* ``optax-lbfgs``: optax's L-BFGS (jaxopt's maintained successor), unconstrained, clipped;
* ``adam``: optax Adam, projected onto the box after every step;
* ``gd``: gradient descent ``x ← x − η∇f`` (seed 004 eq. 8), projected onto the box.

Adding one is a factory returning an :class:`Optimizer` and ``@register_optimizer(name)``
on it.

The default is ``plbfgs`` (the README's speed section has the measurements).
:func:`minimize` runs one on a function; the caller decides ``jit`` and ``vmap``.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nstjax.solve import lbfgs as _plbfgs

ArrayLike = Any

DEFAULT_OPTIMIZER = "plbfgs"


class Status(enum.IntEnum):
    """Why a solve stopped."""

    MAX_ITER = 0
    CONVERGED = 1      # relative change of the loss below rtol
    THRESHOLD = 2      # loss below threshold
    NON_FINITE = 3     # loss or iterate became NaN/inf; last finite iterate kept
    INTERRUPTED = 4    # the on_step hook asked to stop
    CONVERGED_X = 5    # relative change of the iterate below tol_x


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


class Optimizer(NamedTuple):
    """A minimisation method as pure functions (no ``jit`` inside; the caller's applies).

    ``fun(x) -> (value, aux)``: the objective and its auxiliary output (any pytree, ``()``
    for none), which the optimizer returns at every iterate it keeps, from the evaluation it
    makes anyway.

    Attributes:
      init: ``(fun, x0) -> (state, value, aux)`` at ``x0`` (already projected).
      step: ``(fun, x, state) -> (x_new, state_new, value, aux)`` at ``x_new``.
      project: ``x -> x`` clipped into the box.
      bounded: ``True`` when every iterate stays in the box; otherwise :func:`minimize`
        projects the final iterate and evaluates ``fun`` there again.
    """

    init: Callable
    step: Callable
    project: Callable
    bounded: bool


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {}
# The solver settings each factory takes besides the box (``lower``, ``upper``).
_OPTIONS: dict[str, tuple[str, ...]] = {}


def register_optimizer(name: str, *, options: tuple[str, ...] = ()):
    """Decorator: register an :class:`Optimizer` factory under ``name`` (no duplicates).

    ``options`` names the :class:`nstjax.Solver` settings the factory takes
    (``history_size``, ``lr``, ``max_backtracks``) besides the box; :func:`make_optimizer`
    passes exactly those.
    """
    def register(factory):
        if name in OPTIMIZERS:
            raise ValueError(f"optimizer {name!r} is already registered")
        OPTIMIZERS[name] = factory
        _OPTIONS[name] = tuple(options)
        return factory
    return register


def optimizer_names() -> tuple[str, ...]:
    """The registered optimisers' names, in registration order (the default first)."""
    return tuple(OPTIMIZERS)


def get_optimizer(name: str) -> Callable[..., Optimizer]:
    """The factory registered as ``name``; an unknown name lists the valid ones."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def make_optimizer(name: str, *, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
                   history_size: int = 10, lr: ArrayLike = 0.02,
                   max_backtracks: int = 20) -> Optimizer:
    """The registered optimizer ``name`` with the options it takes.

    Call it inside the caller's ``jit``: ``lower``, ``upper`` and ``lr`` may be traced.

    Args:
      name: a registered name (:func:`optimizer_names`).
      lower, upper: the box, scalars or arrays broadcastable to the iterate.
      history_size: L-BFGS memory (static).
      lr: step size of ``adam`` and ``gd``, in units of the normalised objective that
        :func:`minimize` hands the optimizer.
      max_backtracks: step shortenings ``plbfgs`` tries before giving up on an iteration.

    Returns:
      An :class:`Optimizer`.
    """
    factory = get_optimizer(name)
    options = dict(history_size=history_size, lr=lr, max_backtracks=max_backtracks)
    return factory(lower=lower, upper=upper, **{k: options[k] for k in _OPTIONS[name]})


def _box(lower, upper):
    return lambda x: jnp.clip(x, jnp.asarray(lower, x.dtype), jnp.asarray(upper, x.dtype))


@register_optimizer("plbfgs", options=("history_size", "max_backtracks"))
def plbfgs(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0, history_size: int = 10,
           max_backtracks: int = 20) -> Optimizer:
    """Projected L-BFGS (:mod:`nstjax.solve.lbfgs`): bounded, one evaluation per iteration when
    the unit step decreases the objective."""
    def init(fun, x0):
        state, value = _plbfgs.init(fun, x0, history_size=history_size)
        return state, value, state.aux

    def step(fun, x, state):
        x_new, state, value = _plbfgs.step(fun, x, state, lower=jnp.asarray(lower, x.dtype),
                                           upper=jnp.asarray(upper, x.dtype),
                                           max_backtracks=max_backtracks)
        return x_new, state, value, state.aux

    return Optimizer(init, step, _box(lower, upper), True)


def _jaxopt_optimizer(make_solver, lower, upper, bounded):
    def bounds(x):
        return (jnp.broadcast_to(jnp.asarray(lower, x.dtype), x.shape),
                jnp.broadcast_to(jnp.asarray(upper, x.dtype), x.shape))

    def init(fun, x0):
        kw = {"bounds": bounds(x0)} if bounded else {}
        state = make_solver(fun).init_state(x0, **kw)
        return state, state.value, state.aux

    def step(fun, x, state):
        kw = {"bounds": bounds(x)} if bounded else {}
        x_new, state = make_solver(fun).update(x, state, **kw)
        if bounded:
            # jaxopt's projected steps can land 1e-12 outside the box by rounding; the
            # iterate must never leave it (seed 001 keeps pixels in [0, 1]).
            x_new = jnp.clip(x_new, *kw["bounds"])
        return x_new, state, state.value, state.aux

    return Optimizer(init, step, _box(lower, upper), bounded)


@register_optimizer("lbfgsb", options=("history_size",))
def lbfgsb(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
           history_size: int = 10) -> Optimizer:
    """jaxopt's L-BFGS-B with the box as bounds."""
    from nstjax.solve import jaxopt_backend as _jaxopt
    return _jaxopt_optimizer(lambda f: _jaxopt.lbfgsb(f, history_size=history_size),
                             lower, upper, bounded=True)


@register_optimizer("lbfgs", options=("history_size",))
def lbfgs(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
          history_size: int = 10) -> Optimizer:
    """jaxopt's unconstrained L-BFGS (zoom line search); the result is clipped."""
    from nstjax.solve import jaxopt_backend as _jaxopt
    return _jaxopt_optimizer(lambda f: _jaxopt.lbfgs(f, history_size=history_size),
                             lower, upper, bounded=False)


@register_optimizer("optax-lbfgs", options=("history_size",))
def optax_lbfgs(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
                history_size: int = 10) -> Optimizer:
    """optax's L-BFGS (zoom line search), unconstrained; the result is clipped."""
    opt = optax.lbfgs(memory_size=history_size)

    def init(fun, x0):
        value, aux = fun(x0)
        return opt.init(x0), value, aux

    def step(fun, x, state):
        # optax's line search takes a function without auxiliary output: the aux at the
        # new iterate costs one more forward pass (no gradient) per iteration
        value_fn = lambda y: fun(y)[0]  # noqa: E731
        value, grad = optax.value_and_grad_from_state(value_fn)(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=value_fn)
        x_new = optax.apply_updates(x, updates)
        aux = jax.lax.stop_gradient(fun(x_new)[1])
        return x_new, state, optax.tree_utils.tree_get(state, "value"), aux

    return Optimizer(init, step, _box(lower, upper), False)


def _projected_first_order(transform, lower, upper):
    """A first-order optax transform followed by projection onto the box."""
    project = _box(lower, upper)

    def init(fun, x0):
        (value, aux), grad = jax.value_and_grad(fun, has_aux=True)(x0)
        return (transform.init(x0), grad), value, aux

    def step(fun, x, state):
        opt_state, grad = state
        updates, opt_state = transform.update(grad, opt_state, x)
        x_new = project(optax.apply_updates(x, updates))
        (value, aux), grad = jax.value_and_grad(fun, has_aux=True)(x_new)
        return x_new, (opt_state, grad), value, aux

    return Optimizer(init, step, project, True)


@register_optimizer("adam", options=("lr",))
def adam(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0, lr: ArrayLike = 0.02) -> Optimizer:
    """optax Adam with step size ``lr``, projected onto the box after every step."""
    return _projected_first_order(optax.adam(lr), lower, upper)


@register_optimizer("gd", options=("lr",))
def gd(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0, lr: ArrayLike = 0.02) -> Optimizer:
    """Projected gradient descent ``x ← P(x − η∇f)``.

    References:
      Seed 004 eq. 8 (``w^{t+1} = w^t − η_t ∇Loss``), with ``η = lr``.
    """
    return _projected_first_order(optax.sgd(lr), lower, upper)


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
                  has_aux: bool = False) -> SolveState:
    """Start a solve at ``x0`` (projected into the box); no iteration is taken.

    With ``has_aux``, ``fun(x) -> (value, aux)`` and the state keeps ``aux`` after every
    iteration (from the evaluations the optimizer makes anyway)."""
    fun = _with_aux(fun, has_aux)
    x0 = optimizer.project(x0)
    f0 = jax.lax.stop_gradient(fun(x0)[0])
    unit = jnp.where(jnp.isfinite(f0) & (jnp.abs(f0) > 1e-30), jnp.abs(f0), 1.0)
    opt_state, value0, aux0 = optimizer.init(_scaled(fun, unit), x0)
    value0 = value0 * unit
    status0 = jnp.where(jnp.isfinite(value0), Status.MAX_ITER, Status.NON_FINITE)
    aux_history = jax.tree.map(lambda a: jnp.full((max_iter,) + jnp.shape(a), jnp.nan,
                                                  jnp.float32), aux0)
    return SolveState(n_iter=jnp.int32(0), x=x0, opt_state=opt_state, value=value0,
                      history=jnp.full((max_iter,), jnp.nan, jnp.float32),
                      status=status0.astype(jnp.int32), unit=unit, aux=aux0,
                      aux_history=aux_history)


def minimize_continue(fun: Callable, state: SolveState, optimizer: Optimizer, *,
                      until: ArrayLike, rtol: ArrayLike = 0.0, tol_x: ArrayLike = 0.0,
                      threshold: ArrayLike = -jnp.inf,
                      on_step: Callable | None = None, has_aux: bool = False) -> SolveState:
    """Iterate until ``until`` iterations are done in all, or a stop rule fires.

    ``until`` may be traced, so one compiled program runs a solve in chunks: the caller
    reports progress, saves snapshots and checks for Ctrl-C between calls, with no host
    callback inside the program (JAX never writes a program with callbacks to the
    persistent compilation cache). Arguments as in :func:`minimize`.
    """
    scaled = _scaled(_with_aux(fun, has_aux), state.unit)
    max_iter = state.history.shape[0]
    until = jnp.minimum(until, max_iter)

    def cond(carry):
        return (carry.n_iter < until) & (carry.status == Status.MAX_ITER)

    def body(carry):
        i, x, opt_state, value, history, _, unit, aux, aux_history = carry
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
        return SolveState(i + 1, x_keep, opt_state_keep, value_keep, history, status, unit,
                          aux_keep, aux_history)

    return jax.lax.while_loop(cond, body, state)


def minimize_result(fun: Callable, state: SolveState, optimizer: Optimizer, *,
                    has_aux: bool = False) -> OptimizeResult:
    """The :class:`OptimizeResult` of a solve: unbounded optimizers' iterate is projected
    into the box and ``fun`` evaluated there."""
    x, value, aux = state.x, state.value, state.aux
    if not optimizer.bounded:
        x = optimizer.project(x)
        keep = state.status == Status.NON_FINITE
        value_x, aux_x = _with_aux(fun, has_aux)(x)
        value = jnp.where(keep, value, value_x)
        aux = jax.tree.map(lambda a, b: jnp.where(keep, a, b), aux, aux_x)
    return OptimizeResult(x=x, value=value, history=state.history, n_iter=state.n_iter,
                          status=state.status, aux=aux, aux_history=state.aux_history)


def minimize(fun: Callable, x0, optimizer: Optimizer, *, max_iter: int,
             rtol: ArrayLike = 0.0, tol_x: ArrayLike = 0.0,
             threshold: ArrayLike = -jnp.inf,
             on_step: Callable | None = None, has_aux: bool = False) -> OptimizeResult:
    """Minimise ``fun`` from ``x0`` with ``optimizer`` inside one ``lax.while_loop``.

    Pure: call it inside ``jit`` and ``vmap`` it for sweeps. ``rtol``, ``tol_x`` and
    ``threshold`` may be traced; ``max_iter`` is static. To run a solve in chunks (progress
    between compiled calls), use :func:`minimize_init`, :func:`minimize_continue` and
    :func:`minimize_result`, of which this is the composition.

    The optimizer sees ``f / |f(x₀)|``: style objectives reach 1e11-1e15, where L-BFGS-B's
    first steps stall and L-BFGS's first line search overshoots. Values reported back are
    in the caller's units.

    Stopping, whichever comes first: ``max_iter`` iterations; ``|f_k − f_{k−1}| ≤
    rtol·|f_{k−1}|`` (seed 003 §4 stops at 0.5%); ``‖x_k − x_{k−1}‖ ≤ tol_x·‖x_{k−1}‖``;
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

    Returns:
      An :class:`OptimizeResult`; ``x`` is in the box (unbounded optimizers' final iterate
      is projected and ``value`` evaluated there).
    """
    state = minimize_init(fun, x0, optimizer, max_iter=max_iter, has_aux=has_aux)
    state = minimize_continue(fun, state, optimizer, until=max_iter, rtol=rtol, tol_x=tol_x,
                              threshold=threshold, on_step=on_step, has_aux=has_aux)
    return minimize_result(fun, state, optimizer, has_aux=has_aux)
