"""Conventions of the public API, checked by inspection (as dm_pix's ``_src/api_test.py``).

For every public function (a callable in ``nstjax.__all__`` that is not a class):

* optional arguments are keyword-only (``f(x, *, size=256)``), so a call reads the same
  everywhere and a new option never shifts a positional one;
* the PRNG argument is called ``key`` (never ``rng``, ``seed``, ...) and has no default: a
  silent ``PRNGKey(0)`` makes two "random" runs identical without anyone asking for it;
* the network's parameters are called ``vgg`` wherever a function takes them (``weights``
  is the objective's :class:`nstjax.LossWeights`, ``params`` the raw arrays inside a
  :class:`nstjax.VGGWeights`).

The same holds for the functions registered by name (style losses, optimiser factories), and
the ``vgg`` rule for every public function of every ``nstjax`` module, since the
functions behind ``__all__`` call them with the same arguments.

Classes are not checked: their constructors are records (``Objective``, ``Solver``,
``LossWeights``, result tuples) whose fields are positional by nature.

A known violation is a strict ``xfail`` below with its reason: fixing it makes the test
XPASS, which fails until the marker is removed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import nstjax
from nstjax import losses as S
from nstjax.solve import optimize

# Documented exceptions to "optional arguments are keyword-only": (function, argument) -> why.
POSITIONAL_OPTIONAL_OK = {
    ("load_vgg19", "path"): "the file is the loader's subject (``load_vgg19(path)`` reads as "
                            "``load_image(path)``); ``None`` only names the default location",
}

# Known violations, reported to the lead; each is a strict xfail until it is fixed.
KNOWN: dict = {}

# Parameter names that mean a PRNG key but are not spelled ``key``.
PRNG_NAMES = {"rng", "prng", "rng_key", "prng_key", "random_key", "seed", "random_state",
              "subkey"}

# Public functions that take the network: each must take it as ``vgg``.
TAKES_NETWORK = ("extract_features", "compute_targets", "objective_terms", "total_loss",
                 "auto_scales", "run_transfer", "stylize", "sweep")

# Pure functions: ``key``, where they take one, must be given (pure, so no hidden default).
PURE = ("extract_features", "objective_terms", "total_loss", "auto_scales", "run_transfer",
        "compute_targets", "minimize", "init_random_weights", "content_loss", "gram_loss",
        "gram_matrix", "tv_loss", "loss_weights", "make_optimizer")


def _public_functions():
    out = {}
    for name in nstjax.__all__:
        obj = getattr(nstjax, name)
        if callable(obj) and not inspect.isclass(obj):
            out[name] = obj
    return out


PUBLIC = _public_functions()


def _module_functions():
    """Public functions defined in each public ``nstjax`` module (names not starting with _)."""
    out = {}
    for info in pkgutil.walk_packages(nstjax.__path__, "nstjax."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (not name.startswith("_") and inspect.isfunction(obj)
                    and obj.__module__ == module.__name__):
                out[f"{module.__name__}.{name}"] = obj
    return out


MODULE_FUNCTIONS = _module_functions()


def _cases(rule, names):
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN[(rule, n)]))
            if (rule, n) in KNOWN else n for n in sorted(names)]


def _params(fn):
    return inspect.signature(fn).parameters.values()


def _annotation(p) -> str:
    return "" if p.annotation is inspect.Parameter.empty else str(p.annotation)


def test_there_is_something_to_check():
    assert set(TAKES_NETWORK) | {"load_vgg19", "loss_weights", "minimize"} <= set(PUBLIC)
    assert set(PURE) <= set(PUBLIC)
    assert "nstjax.io.pictures.contact_sheet" in MODULE_FUNCTIONS


@pytest.mark.parametrize("name", _cases("keyword_only", PUBLIC))
def test_optional_arguments_are_keyword_only(name):
    bad = [p.name for p in _params(PUBLIC[name])
           if p.default is not p.empty
           and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
           and (name, p.name) not in POSITIONAL_OPTIONAL_OK]
    assert not bad, f"{name}: optional arguments {bad} can be passed by position"


def test_documented_exceptions_exist():
    """Every exception names a real optional positional argument (no stale entries)."""
    for (fn, arg) in POSITIONAL_OPTIONAL_OK:
        p = inspect.signature(PUBLIC[fn]).parameters[arg]
        assert p.default is not p.empty and p.kind == p.POSITIONAL_OR_KEYWORD


@pytest.mark.parametrize("name", _cases("prng_name", PUBLIC))
def test_prng_argument_is_called_key(name):
    for p in _params(PUBLIC[name]):
        assert p.name not in PRNG_NAMES, f"{name}: PRNG argument {p.name!r} should be 'key'"
        if "PRNGKey" in _annotation(p) or "KeyArray" in _annotation(p):
            assert p.name == "key", name


@pytest.mark.parametrize("name", _cases("key_default", PUBLIC))
def test_key_has_no_default(name):
    params = inspect.signature(PUBLIC[name]).parameters
    if "key" in params:
        assert params["key"].default is inspect.Parameter.empty, \
            f"{name}: 'key' has a default; the caller must give the randomness"


@pytest.mark.parametrize("name", _cases("vgg_name", TAKES_NETWORK))
def test_network_argument_is_called_vgg(name):
    assert "vgg" in inspect.signature(PUBLIC[name]).parameters, name


@pytest.mark.parametrize("name", _cases("vgg_name", MODULE_FUNCTIONS))
def test_no_function_calls_the_network_otherwise(name):
    """In every module: an argument annotated ``VGGWeights`` is ``vgg``, and no argument is
    called ``network``, ``net``, ``model`` or ``vgg_weights``."""
    for p in _params(MODULE_FUNCTIONS[name]):
        if "VGGWeights" in _annotation(p):
            assert p.name == "vgg", f"{name}: network argument called {p.name!r}"
        assert p.name not in ("network", "net", "model", "vgg_weights", "vgg_params"), name


@pytest.mark.parametrize("name", sorted(S.style_loss_names()))
def test_style_loss_contract(name):
    """``loss(features, target, *, hyper, key, mask=None)``: two positional arrays, the rest
    keyword-only, ``hyper`` and ``key`` required, ``mask`` uniform by default."""
    params = list(_params(S.get_style_loss(name).loss))
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = {p.name: p for p in params if p.kind == p.KEYWORD_ONLY}
    assert len(positional) == 2 and all(p.default is p.empty for p in positional)
    assert set(keyword) == {"hyper", "key", "mask"}
    assert keyword["hyper"].default is inspect.Parameter.empty
    assert keyword["key"].default is inspect.Parameter.empty
    assert keyword["mask"].default is None


@pytest.mark.parametrize("name", sorted(optimize.optimizer_names()))
def test_optimizer_factories_take_keywords_only(name):
    """Registered factories (optax's habit): every option keyword-only, all with defaults, so
    :func:`nstjax.make_optimizer` can pass the options each one accepts."""
    for p in _params(optimize.get_optimizer(name)):
        assert p.kind == p.KEYWORD_ONLY and p.default is not p.empty, f"{name}: {p.name}"


def test_every_registered_style_method_is_in_the_losses_namespace():
    """``nstjax.losses.<name>`` (``-`` as ``_``) is the registered method, and calling it
    is its loss with the default hyper-parameters."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    for name in S.style_loss_names():
        if name.startswith("test-"):
            continue
        method = getattr(S, name.replace("-", "_"))
        assert method is S.get_style_loss(name), name
    f = jax.random.uniform(jax.random.PRNGKey(0), (6, 5, 4))
    s = jax.random.uniform(jax.random.PRNGKey(1), (7, 3, 4))
    np.testing.assert_allclose(float(S.gram(f, S.gram.target(s))),
                               float(S.gram.loss(f, S.gram.target(s), hyper={}, key=None)))
    with pytest.raises(ValueError, match="key"):
        S.mmd_gauss(f, S.mmd_gauss.target(s))
    assert float(S.mmd_gauss(f, S.mmd_gauss.target(s), key=jax.random.PRNGKey(2))) == \
        pytest.approx(float(S.mmd_gauss.loss(f, s, hyper={}, key=jax.random.PRNGKey(2))))
    assert isinstance(jnp.zeros(()), jax.Array)


def test_public_api_has_no_mutable_registries_and_a_version():
    """Look-up functions, not dicts (optax's habit); factories exported; a version."""
    import importlib.metadata
    for name in nstjax.__all__:
        assert not isinstance(getattr(nstjax, name), (dict, list, set)), name
    assert nstjax.__version__ == importlib.metadata.version("nstjax")
    assert nstjax.optimizer_names()[0] == nstjax.Solver().optimizer
    for name in ("plbfgs", "adam", "gd", "lbfgsb", "lbfgs", "optax_lbfgs"):
        assert isinstance(getattr(nstjax, name)(), nstjax.Optimizer), name
    assert nstjax.get_optimizer("optax-lbfgs") is nstjax.optax_lbfgs
