"""NumPy forms of every registered style method, written from the equations (li2017 eq. 2,
9-12; stylerep eq. 1.4-1.6; du2017 §3.5; the distribution and matching papers through
test_distribution and test_patches), not from the JAX code: the references of
test_style_losses, test_masked_style_losses and test_registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from conftest import rows as _rows
from test_distribution import (
    _cmd_np,
    _gauss_w2_np,
    _histogram_np,
    _sliced_np,
)
from test_patches import _mrf_np, _remd_np

from nstjax import losses as S
from nstjax.losses import mmd, statistics

RTOL64 = 1e-9
NAMES = sorted(S.style_loss_names())

# --------------------------------------------------------------------------- NumPy forms




def _mmd2_brute(x, y, k):
    """li2017 eq. 2 with explicit kernel sums (biased V-statistic)."""
    return k(x, x).mean() + k(y, y).mean() - 2.0 * k(x, y).mean()


def _gram_np(f, s, norm):
    x, y = _rows(f), _rows(s)
    n, c = x.shape[0], x.shape[1]
    d = x.T @ x - y.T @ y
    return {"gatys": (d ** 2).sum() / (4 * c * c * n * n),
            "gamma": (d ** 2).sum() / (c * c * n * n),
            "hw": ((d / n) ** 2).sum(), "chw": ((d / (c * n)) ** 2).mean()}[norm]


def _gauss_np(f, s, hyper, key):
    x, y = _rows(f), _rows(s)
    ix, iy = (np.asarray(i) for i in mmd.gaussian_pairs(x.shape[0], y.shape[0], key))
    xa, xb, ya, yb = x[ix[:, 0]], x[ix[:, 1]], y[iy[:, 0]], y[iy[:, 1]]
    d = np.stack([((xa - xb) ** 2).sum(1), ((ya - yb) ** 2).sum(1),
                  ((xa - yb) ** 2).sum(1), ((xb - ya) ** 2).sum(1)])
    s2 = hyper["sigma2"] if hyper["sigma2"] > 0 else d.mean()
    k = np.exp(-d / (2 * s2))
    return (k[0] + k[1] - k[2] - k[3]).mean()


def _moments_np(a, order=4):
    """``M_1`` the channel mean, ``M_i`` (i ≥ 2) the central moments: the seed defines
    ``M_i`` by reference to a section it lacks; central moments are the named guess."""
    x = _rows(a)
    mu = x.mean(0)
    return np.stack([mu] + [((x - mu) ** i).mean(0) for i in range(2, order + 1)])


def _eq14_np(f, s, w, *, psi_of):
    """stylerep eq. 1.4: ``1/c Σ_i ψ(M_i(F^s)) Σ_j (M_i(F^s_j) − M_i(F^n_j))²`` with
    ``ψ = psi_of`` applied to the moment's mean over channels (eq. 1.5's ``M_1``), term by
    term in loops, ``w_i`` switching moments on and off."""
    ms, mf = _moments_np(s), _moments_np(f)
    c = f.shape[-1]
    total = 0.0
    for i in range(4):
        psi = psi_of(sum(ms[i, j] for j in range(c)) / c)
        total += w[i] * psi * sum((ms[i, j] - mf[i, j]) ** 2 for j in range(c))
    return total / c


def _psi_printed(m):
    """Eq. 1.5 as printed: ``min{1, 1/M_1}`` (``1/0 = ∞``)."""
    return 1.0 if m == 0 else min(1.0, 1.0 / m)


def _moment_loss_np(f, s, hyper, key):
    w = [hyper[f"w{i}"] for i in range(1, 5)]
    if hyper["literal_psi"]:
        return _eq14_np(f, s, w, psi_of=_psi_printed)
    return _eq14_np(f, s, w, psi_of=lambda m: _psi_printed(abs(m)))   # the named guess


def _eq16_np(f, s, k):
    """stylerep eq. 1.6 as printed: ``Σ_i Σ_{j=1}^{⌊hw/2⌋} h((s_{i,2j−1}, n_{i,2j−1}),
    (s_{i,2j}, n_{i,2j}))`` with Gretton et al.'s linear-time ``h((x, y), (x', y')) =
    k(x, x') + k(y, y') − k(x, y') − k(x', y)`` and the kernel ``k`` given."""
    x, y = _rows(f), _rows(s)
    total = 0.0
    for i in range(x.shape[1]):
        for j in range(1, x.shape[0] // 2 + 1):
            s1, s2 = y[2 * j - 2, i], y[2 * j - 1, i]      # 1-based 2j−1, 2j
            n1, n2 = x[2 * j - 2, i], x[2 * j - 1, i]
            total += k(s1, s2) + k(n1, n2) - k(s1, n2) - k(s2, n1)
    return total


def _channel_mmd_np(f, s, hyper, key):
    """Eq. 1.6 divided by its pair count, with a Gaussian kernel whose per-channel
    bandwidth is the mean squared pair distance: kernel, bandwidth and ``1/P`` are the
    guesses named in ``channel_mmd_loss``'s docstring."""
    x, y = _rows(f), _rows(s)
    p = min(x.shape[0], y.shape[0]) // 2
    total = 0.0
    for i in range(x.shape[1]):
        pairs = [(y[2 * j, i], y[2 * j + 1, i], x[2 * j, i], x[2 * j + 1, i]) for j in range(p)]
        d = [[(a - b) ** 2, (c - e) ** 2, (a - e) ** 2, (b - c) ** 2] for a, b, c, e in pairs]
        bw = hyper["sigma2"] if hyper["sigma2"] > 0 else np.mean(d)
        total += sum(np.exp(-q[0] / (2 * bw)) + np.exp(-q[1] / (2 * bw))
                     - np.exp(-q[2] / (2 * bw)) - np.exp(-q[3] / (2 * bw)) for q in d) / p
    return total


def _stats_np(a, eps=statistics.STAT_EPS):
    x = _rows(a)
    mu, var = x.mean(0), x.var(0)
    c = x - mu
    return np.stack([mu, x.std(0), (c ** 3).mean(0) / (var + eps) ** 1.5,
                     (c ** 4).mean(0) / (var + eps) ** 2])


def _stats_loss_np(f, s, w):
    return (np.asarray(w) * ((_stats_np(f) - _stats_np(s)) ** 2).mean(1)).sum()


def _dislocator_np(g):
    def ref(f, s, hyper, key):
        def stat(a):
            return g(_rows(a)).sum(0) / a.size          # a.size = C·H·W
        return ((stat(f) - stat(s)) ** 2).mean()
    return ref


def _bn_np(f, s, hyper, key):
    x, y = _rows(f), _rows(s)
    return (((x.mean(0) - y.mean(0)) ** 2).sum()
            + ((x.std(0) - y.std(0)) ** 2).sum()) / x.shape[1]


def _onehot(name):
    return [float(s == name) for s in statistics.STATISTICS]


REFERENCE = {
    "gram": lambda f, s, h, k: _gram_np(f, s, "gatys"),
    "gram-gamma": lambda f, s, h, k: _gram_np(f, s, "gamma"),
    "gram-hw": lambda f, s, h, k: _gram_np(f, s, "hw"),
    "gram-chw": lambda f, s, h, k: _gram_np(f, s, "chw"),
    "mmd-linear": lambda f, s, h, k: _mmd2_brute(_rows(f), _rows(s), lambda a, b: a @ b.T)
    / f.shape[-1],
    "mmd-poly": lambda f, s, h, k: _mmd2_brute(
        _rows(f), _rows(s), lambda a, b: (a @ b.T + h["c"]) ** 2) / (4 * f.shape[-1] ** 2),
    "mmd-gauss": _gauss_np,
    "bn": _bn_np,
    "moments": _moment_loss_np,
    "channel-mmd": _channel_mmd_np,
    "mean": _dislocator_np(lambda x: x),
    "mean-sq": _dislocator_np(lambda x: x * x),
    "mean-abs": _dislocator_np(np.abs),
    "stats": lambda f, s, h, k: _stats_loss_np(f, s, [h[n] for n in statistics.STATISTICS]),
    **{f"stats-{n}": (lambda n: lambda f, s, h, k: _stats_loss_np(f, s, _onehot(n)))(n)
       for n in statistics.STATISTICS},
    # the distribution distances, from their papers (tests/losses/test_distribution.py)
    "sliced-wasserstein": lambda f, s, h, k: _sliced_np(f, s, k),
    "gaussian-w2": lambda f, s, h, k: _gauss_w2_np(f, s),
    "histogram": lambda f, s, h, k: _histogram_np(f, s)[0],
    "cmd": lambda f, s, h, k: _cmd_np(f, s, [h[f"w{i}"] for i in range(1, 6)]),
    # matching losses (tests/losses/test_patches.py); these maps have < 1024 positions, so the
    # relaxed EMD uses every one of them and does not depend on the key
    "relaxed-emd": lambda f, s, h, k: _remd_np(f, s, weights=(h["remd"], h["moment"])),
    "mrf": lambda f, s, h, k: _mrf_np(f, s),
}

# Non-default hyper-parameters, to check they reach the loss.
CUSTOM_HYPER = {
    "mmd-poly": {"c": 0.7},
    "mmd-gauss": {"sigma2": 1.3},
    "channel-mmd": {"sigma2": 1.3},
    "moments": {"w1": 1.0, "w2": 0.5, "w3": 0.25, "w4": 2.0, "literal_psi": 1.0},
    "stats": {"mean": 1.0, "std": 2.0, "skew": 0.5, "kurt": 0.3},
    "relaxed-emd": {"remd": 3.0, "moment": 0.5},
}


def _loss(name, f, s, hyper=None, key=None, *, mask=None):
    m = S.get_style_loss(name)
    key = jax.random.PRNGKey(3) if key is None else key
    return m.loss(jnp.asarray(f), m.target(jnp.asarray(s)), hyper={} if hyper is None else hyper,
                  key=key, mask=None if mask is None else jnp.asarray(mask))
