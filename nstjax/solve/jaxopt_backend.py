"""The one place nstjax touches jaxopt (archived upstream; it warns on import).

``optax.lbfgs`` is its maintained successor and is offered beside it (``optax-lbfgs``);
``plbfgs`` (:mod:`nstjax.solve.lbfgs`) replaces its L-BFGS-B.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import jaxopt


def lbfgsb(fun, *, history_size: int):
    """jaxopt's L-BFGS-B of ``fun(x) -> (value, aux)``; box bounds go to
    ``init_state``/``update``."""
    return jaxopt.LBFGSB(fun=fun, history_size=history_size, tol=0.0, has_aux=True)


def lbfgs(fun, *, history_size: int):
    """jaxopt's unconstrained L-BFGS (zoom line search) of ``fun(x) -> (value, aux)``."""
    return jaxopt.LBFGS(fun=fun, history_size=history_size, tol=0.0, has_aux=True)
