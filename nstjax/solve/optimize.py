"""Optimisers as data, and one driver that runs any of them in a ``lax.while_loop``.

An :class:`Optimizer` is a named tuple of pure functions (as optax's
``GradientTransformation``), made by a factory registered by name in :data:`OPTIMIZERS`:

* ``plbfgs``: projected L-BFGS (:mod:`nstjax.solve.lbfgs`), every iterate in the box, unit step
  first and a backtracking search only when it does not decrease the objective;
* ``lbfgsb``: jaxopt's L-BFGS-B with the box as bounds (every iterate in the box);
* ``lbfgs``: jaxopt's L-BFGS (zoom line search), unconstrained; the result is clipped;
* ``optax-lbfgs``: optax's L-BFGS (jaxopt's maintained successor), unconstrained, clipped;
* ``adam``: optax Adam, projected onto the box after every step;
* ``rmsprop``: RMSprop with PyTorch's defaults (STROTSS's), projected onto the box;
* ``gd``: gradient descent ``x ← x − η∇f`` (bordag2020 eq. 8), projected onto the box.

Adding one is a factory returning an :class:`Optimizer` and ``@register_optimizer(name)``
on it.

The default is ``plbfgs`` (docs/performance.md, "Where the time goes", has the measurements).
:func:`nstjax.solve.minimize.minimize` runs one on a function; the caller decides
``jit`` and ``vmap``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nstjax.solve import lbfgs as _plbfgs

ArrayLike = Any

DEFAULT_OPTIMIZER = "plbfgs"


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
_LINE_SEARCH: dict[str, bool] = {}


def register_optimizer(name: str, *, options: tuple[str, ...] = (), line_search: bool = True):
    """Decorator: register an :class:`Optimizer` factory under ``name`` (no duplicates).

    ``options`` names the :class:`nstjax.Solver` settings the factory takes
    (``history_size``, ``lr``, ``max_backtracks``) besides the box; :func:`make_optimizer`
    passes exactly those.  ``line_search``: the method compares values and gradients at
    nearby points (a line search, curvature pairs), so it needs the same function at every
    evaluation (:func:`uses_line_search`; the default, the safe assumption).
    """
    def register(factory):
        if name in OPTIMIZERS:
            raise ValueError(f"optimizer {name!r} is already registered")
        OPTIMIZERS[name] = factory
        _OPTIONS[name] = tuple(options)
        _LINE_SEARCH[name] = bool(line_search)
        return factory
    return register


def optimizer_names() -> tuple[str, ...]:
    """The registered optimisers' names, in registration order (the default first)."""
    return tuple(OPTIMIZERS)


def uses_line_search(name: str) -> bool:
    """Whether optimiser ``name`` needs a deterministic objective (it was registered with
    ``line_search=True``); the others take a stochastic one."""
    get_optimizer(name)
    return _LINE_SEARCH[name]


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


@register_optimizer("plbfgs", options=("history_size", "max_backtracks"), line_search=True)
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
            # iterate must never leave it (mathur2017 keeps pixels in [0, 1]).
            x_new = jnp.clip(x_new, *kw["bounds"])
        return x_new, state, state.value, state.aux

    return Optimizer(init, step, _box(lower, upper), bounded)


@register_optimizer("lbfgsb", options=("history_size",), line_search=True)
def lbfgsb(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
           history_size: int = 10) -> Optimizer:
    """jaxopt's L-BFGS-B with the box as bounds."""
    from nstjax.solve import jaxopt_backend as _jaxopt
    return _jaxopt_optimizer(lambda f: _jaxopt.lbfgsb(f, history_size=history_size),
                             lower, upper, bounded=True)


@register_optimizer("lbfgs", options=("history_size",), line_search=True)
def lbfgs(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
          history_size: int = 10) -> Optimizer:
    """jaxopt's unconstrained L-BFGS (zoom line search); the result is clipped."""
    from nstjax.solve import jaxopt_backend as _jaxopt
    return _jaxopt_optimizer(lambda f: _jaxopt.lbfgs(f, history_size=history_size),
                             lower, upper, bounded=False)


@register_optimizer("optax-lbfgs", options=("history_size",), line_search=True)
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


@register_optimizer("adam", options=("lr",), line_search=False)
def adam(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0, lr: ArrayLike = 0.02) -> Optimizer:
    """optax Adam with step size ``lr``, projected onto the box after every step."""
    return _projected_first_order(optax.adam(lr), lower, upper)


@register_optimizer("rmsprop", options=("lr",), line_search=False)
def rmsprop(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0,
            lr: ArrayLike = 0.002) -> Optimizer:
    """RMSprop (Tieleman & Hinton 2012) as ``torch.optim.RMSprop``'s defaults, STROTSS's
    optimiser: ``v ← 0.99 v + 0.01 g²``, ``x ← x − η g / (√v + 10⁻⁸)``; projected onto the
    box after every step."""
    return _projected_first_order(optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False),
                                  lower, upper)


@register_optimizer("gd", options=("lr",), line_search=False)
def gd(*, lower: ArrayLike = 0.0, upper: ArrayLike = 1.0, lr: ArrayLike = 0.02) -> Optimizer:
    """Projected gradient descent ``x ← P(x − η∇f)``.

    References:
      bordag2020 eq. 8 (``w^{t+1} = w^t − η_t ∇Loss``), with ``η = lr``.
    """
    return _projected_first_order(optax.sgd(lr), lower, upper)
