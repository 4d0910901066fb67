"""Projected L-BFGS: limited-memory quasi-Newton steps that never leave a box.

The iterate stays in ``[lower, upper]`` at every step. Each iteration:

1. Coordinates on a bound whose gradient pushes outward (``x = lower`` with ``g > 0`` or
   ``x = upper`` with ``g < 0``) are held fixed: their gradient and direction are zeroed.
2. The direction is L-BFGS's two-loop recursion over the last ``history_size`` pairs
   ``(s, y)`` applied to that projected gradient, with ``H₀ = γI``, ``γ = sᵀy / yᵀy`` of the
   newest pair (while the history is empty: steepest descent, the step shortened so that
   no coordinate moves by more than 1).
3. The unit step, projected onto the box, is tried first: one evaluation per iteration, as
   PyTorch's L-BFGS with ``lr=1`` and no line search. Only when the objective does not
   decrease enough (Armijo, ``c₁ = 10⁻⁴``, along the projected path) is the step
   shortened, to the minimiser of the quadratic through ``f(0)``, ``f'(0)`` and ``f(t)``
   kept within ``[t/10, t/2]``, up to ``max_backtracks`` times.
4. The pair is stored only when ``sᵀy > ε·yᵀy`` (positive curvature), so the implied
   inverse Hessian stays positive definite.

Pure JAX: no host calls, no ``jit`` inside; every function vmaps.

References:
  Nocedal & Wright, *Numerical Optimization* (2006), Algorithm 7.4 (two-loop recursion).
  Kim, Sra & Dhillon, "Tackling box-constrained optimization via a new projected
  quasi-Newton approach", SIAM J. Sci. Comput. 32(6), 2010 (fixed and free variables).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class PLBFGSState(NamedTuple):
    """State of the projected L-BFGS at the current iterate ``x``.

    Attributes:
      value: ``f32[]`` objective at ``x``.
      grad: gradient at ``x``, shaped as ``x``.
      s: ``f32[m, n]`` iterate differences, a ring buffer (``n = x.size``).
      y: ``f32[m, n]`` gradient differences.
      rho: ``f32[m]`` ``1 / sᵀy``; 0 marks an empty slot.
      head: ``i32[]`` the slot the next pair goes into.
      gamma: ``f32[]`` initial inverse-Hessian scale ``sᵀy / yᵀy``.
      n_evals: ``i32[]`` objective evaluations so far (diagnostic).
      aux: the auxiliary output of ``fun`` at ``x`` (any pytree; ``()`` when none).
    """

    value: jax.Array
    grad: jax.Array
    s: jax.Array
    y: jax.Array
    rho: jax.Array
    head: jax.Array
    gamma: jax.Array
    n_evals: jax.Array
    aux: Any = ()


def two_loop(g, s, y, rho, head, gamma):
    """``H g`` for the L-BFGS inverse Hessian of the pairs in the ring buffer.

    Args:
      g: ``f32[n]``.
      s, y: ``f32[m, n]``; rows with ``rho == 0`` are empty and contribute nothing.
      rho: ``f32[m]``.
      head: ``i32[]`` slot after the newest pair.
      gamma: ``f32[]`` scale of ``H₀``.

    Returns:
      ``f32[n]``.

    References:
      Nocedal & Wright (2006), Algorithm 7.4.
    """
    m = s.shape[0]
    newest_first = (head - 1 - jnp.arange(m)) % m

    def backward(q, i):
        a = rho[i] * jnp.vdot(s[i], q)
        return q - a * y[i], a

    q, alphas = jax.lax.scan(backward, g, newest_first)

    def forward(r, i_a):
        i, a = i_a
        b = rho[i] * jnp.vdot(y[i], r)
        return r + (a - b) * s[i], None

    r, _ = jax.lax.scan(forward, gamma * q, (newest_first[::-1], alphas[::-1]))
    return r


def init(fun: Callable, x0, *, history_size: int) -> tuple[PLBFGSState, jax.Array]:
    """State at ``x0`` (already in the box) and the value there; ``fun(x) -> (value,
    aux)``."""
    (value, aux), grad = jax.value_and_grad(fun, has_aux=True)(x0)
    n, dtype = x0.size, x0.dtype
    empty = jnp.zeros((history_size, n), dtype)
    state = PLBFGSState(value=value, grad=grad, s=empty, y=empty,
                        rho=jnp.zeros((history_size,), dtype), head=jnp.int32(0),
                        gamma=jnp.ones((), dtype), n_evals=jnp.int32(1), aux=aux)
    return state, value


def free_mask(x, grad, lower, upper):
    """``True`` where a coordinate may move: not on a bound its gradient pushes it past."""
    return ~(((x <= lower) & (grad > 0)) | ((x >= upper) & (grad < 0)))


def step(fun: Callable, x, state: PLBFGSState, *, lower, upper, max_backtracks: int = 20,
         c1: float = 1e-4, shrink: float = 0.5):
    """One projected L-BFGS iteration from ``x`` (in the box); ``fun(x) -> (value, aux)``.

    Returns:
      ``(x_new, state_new, value at x_new)``; ``x_new`` is in the box and ``state_new.aux``
      is ``fun``'s auxiliary output there. When no step within
      ``max_backtracks`` shortenings decreases ``fun``, ``x`` is kept and the history is
      cleared, so the next iteration starts again from scaled steepest descent.
    """
    value_and_grad = jax.value_and_grad(fun, has_aux=True)
    g = state.grad
    free = free_mask(x, g, lower, upper)
    pg = jnp.where(free, g, 0.0)
    empty = ~jnp.any(state.rho > 0)
    d = -two_loop(pg.ravel(), state.s, state.y, state.rho, state.head,
                  state.gamma).reshape(x.shape)
    d = jnp.where(free, d, 0.0)
    # The two-loop direction is a descent direction for the full gradient; restricted to
    # the free coordinates it usually stays one. When it does not, use steepest descent.
    slope = jnp.vdot(pg, d)
    d = jnp.where((slope < 0) & jnp.isfinite(slope), d, -state.gamma * pg)
    # With no curvature pairs yet, no step moves a coordinate by more than 1 (the box is
    # [0, 1] wide for images); PyTorch's first step, min(1, 1/‖g‖₁), is ~30× shorter here
    # and its curvature pair is usually rejected (sᵀy < 0 near the content image).
    t0 = jnp.where(empty, jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.max(jnp.abs(d)), 1e-30)),
                   1.0).astype(x.dtype)

    def trial(t):
        x_t = jnp.clip(x + t * d, lower, upper)
        (v_t, a_t), g_t = value_and_grad(x_t)
        # Armijo along the projected path; never accept an increase.
        decrease = jnp.minimum(jnp.vdot(g, x_t - x), 0.0)
        ok = jnp.isfinite(v_t) & (v_t <= state.value + c1 * decrease)
        return x_t, v_t, g_t, a_t, ok

    def cond(carry):
        k, _, _, _, _, _, ok = carry
        return ~ok & (k < max_backtracks)

    slope = jnp.vdot(g, d)

    def body(carry):
        k, t, _, v_t, _, _, _ = carry
        # Minimiser of the quadratic through f(0), f'(0) and f(t), kept in [t/10, t/2].
        curvature = v_t - state.value - slope * t
        t_q = -slope * t * t / (2.0 * curvature)
        t = jnp.where(jnp.isfinite(t_q) & (curvature > 0),
                      jnp.clip(t_q, 0.1 * t, shrink * t), shrink * t)
        return (k + 1, t, *trial(t))

    k, _, x_t, v_t, g_t, a_t, ok = jax.lax.while_loop(cond, body,
                                                      (jnp.int32(0), t0, *trial(t0)))

    s_new = (x_t - x).ravel()
    y_new = (g_t - g).ravel()
    sy, yy = jnp.vdot(s_new, y_new), jnp.vdot(y_new, y_new)
    store = ok & (sy > jnp.finfo(x.dtype).eps * yy) & (yy > 0)
    slot = state.head
    # Select per row, not per buffer: a whole-buffer `where` copies m·n floats.
    s_hist = state.s.at[slot].set(jnp.where(store, s_new, state.s[slot]))
    y_hist = state.y.at[slot].set(jnp.where(store, y_new, state.y[slot]))
    rho = state.rho.at[slot].set(jnp.where(store, 1.0 / jnp.where(store, sy, 1.0),
                                           state.rho[slot]))
    # A failed search clears the history (rho = 0 empties every slot).
    rho = jnp.where(ok, rho, jnp.zeros_like(rho))
    head = jnp.where(store, (slot + 1) % state.s.shape[0], slot)
    gamma = jnp.where(store, sy / jnp.where(store, yy, 1.0), state.gamma)
    gamma = jnp.where(ok, gamma, jnp.ones_like(gamma))
    x_new = jnp.where(ok, x_t, x)
    v_new = jnp.where(ok, v_t, state.value)
    g_new = jnp.where(ok, g_t, g)
    a_new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), a_t, state.aux)
    new = PLBFGSState(value=v_new, grad=g_new, s=s_hist, y=y_hist, rho=rho, head=head,
                      gamma=gamma, n_evals=state.n_evals + k + 1, aux=a_new)
    return x_new, new, v_new
