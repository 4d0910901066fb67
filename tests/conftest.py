"""Shared fixtures: a tiny random VGG for fast tests, the real weights for a few."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest

import nstjax
from nstjax.io import weights as W
from nstjax.run.compile_cache import enable_compilation_cache

SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_configure(config):
    """Every test, and every Python process a test starts, uses the persistent compilation
    cache the command line uses (``NSTJAX_COMPILATION_CACHE``; ``off`` disables it), so a
    second run of the suite compiles almost nothing whatever order the tests run in."""
    folder = enable_compilation_cache()
    if folder is not None:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


def pytest_collection_modifyitems(config, items):
    """The integration tier (``-m integration``; ``-m "not integration"`` is the unit tier):
    the tests that use the real weights or a browser, by their own marks, and those that
    start a Python process, marked by hand (tests/test_architecture.py checks it)."""
    for item in items:
        if item.get_closest_marker("real_weights") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.integration)


MAX_MAPPINGS = 30_000     # under half of Linux's default vm.max_map_count (65,530)


def _mappings() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:          # not Linux: nothing to watch
        return 0


@pytest.fixture(autouse=True, scope="module")
def _bounded_compiled_programs():
    """After a test module, drop JAX's in-memory compiled programs when the process holds
    many memory mappings: one process running the whole suite keeps thousands of programs,
    each with its own mappings, and compiling past the kernel's limit on mappings per
    process (vm.max_map_count) crashes.  Below the bound the programs stay, for the next
    modules to reuse."""
    yield
    if _mappings() > MAX_MAPPINGS:
        jax.clear_caches()


@pytest.fixture(scope="session")
def tiny_vgg():
    """VGG19 topology with 4-8 channels per block, random weights (deterministic)."""
    return nstjax.init_random_weights(jax.random.PRNGKey(0))


@pytest.fixture(autouse=True)
def _skip_without_real_weights(request):
    """A test marked ``real_weights`` (many run the command, which loads the weights
    itself) is skipped when the weights are absent and ``NSTJAX_NO_FETCH`` is set."""
    if (request.node.get_closest_marker("real_weights") is not None
            and os.environ.get("NSTJAX_NO_FETCH")
            and not W.default_weights_path().exists()):
        pytest.skip(f"{W.default_weights_path()} missing and NSTJAX_NO_FETCH set")


@pytest.fixture(scope="session")
def real_vgg():
    """The converted VGG19 weights; skipped when they are absent and cannot be fetched."""
    path = W.default_weights_path()
    if not path.exists() and os.environ.get("NSTJAX_NO_FETCH"):
        pytest.skip(f"{path} missing and NSTJAX_NO_FETCH set")
    try:
        return nstjax.load_vgg19(path)
    except W.WeightsError as e:  # e.g. no network
        pytest.skip(f"real weights unavailable: {e}")


def make_image(h, w, seed=0):
    """A smooth, structured RGB test image in [0, 1] (gradients, stripes and a disc)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    f = rng.uniform(2, 6, size=3)
    img = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (f[0] * x + 0.3)),
                    0.5 + 0.5 * np.cos(2 * np.pi * f[1] * y),
                    ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1).astype(float) * 0.8 + 0.1 * f[2] / 6],
                   axis=-1)
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture
def shared_images():
    """Path to ../shared/images, or skip."""
    p = SHARED / "images"
    if not p.is_dir():
        pytest.skip("../shared/images not present")
    return p


@pytest.fixture
def x64():
    """float64 for the duration of one test (restored afterwards)."""
    with jax.enable_x64(True):
        yield


def feature_maps(seed=0, shape_f=(6, 5, 4), shape_s=(4, 7, 4)):
    """Generated and style features, float64, of unequal sizes (30 and 28 positions)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=shape_f) * 1.5 + 0.5
    s = rng.normal(size=shape_s) * 2.0 + 1.0
    return f, s


def rows(a):
    """``[..., C]`` features as the paper's ``M × C`` matrix of positions."""
    return a.reshape(-1, a.shape[-1])
