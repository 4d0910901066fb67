"""The benchmarks' PyTorch reference computes nstjax's objective (skipped without torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_image

import nstjax

# The reference lives with the benchmarks, outside the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "reference"))
from torch_objective import reference_spec, torch_objective  # noqa: E402


def test_reference_equals_total_loss(tiny_vgg):
    torch = pytest.importorskip("torch")
    content, style = jnp.asarray(make_image(24, 32, seed=1)), jnp.asarray(make_image(32, 32, 2))
    objective = nstjax.Objective()
    weights = nstjax.loss_weights(objective, tv_weight=0.5)
    targets = nstjax.compute_targets(tiny_vgg, content, [style], objective=objective)
    x = content * 0.9 + 0.05
    ours = float(nstjax.total_loss(x, tiny_vgg, targets, weights, jax.random.PRNGKey(0),
                                   objective=objective))
    loss = torch_objective(tiny_vgg, content, style, reference_spec(objective, weights))
    theirs = float(loss(torch.as_tensor(np.array(x))))
    # float32 sums taken in another order by another library: 1e-5 relative
    assert theirs == pytest.approx(ours, rel=1e-5)


def test_reference_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="Gram"):
        reference_spec(nstjax.Objective(style_losses=("bn",)),
                       nstjax.loss_weights(nstjax.Objective(style_losses=("bn",))))
