"""One image's rows over 4 CPU devices equals the one-device run (subprocess: XLA_FLAGS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, sys.argv[1])
    import nstjax
    from nstjax.objective.terms import compute_targets, total_loss
    from nstjax.large.sharding import shard_rows, spatial_mesh, stylize_sharded
    from tests.conftest import make_image

    assert jax.device_count() == 4, jax.devices()
    vgg = nstjax.init_random_weights(jax.random.PRNGKey(0))
    content = make_image(64, 48, seed=1)
    style = make_image(48, 48, seed=2)
    key = jax.random.PRNGKey(0)
    obj = nstjax.Objective(content_loss="sum")   # the objective these tolerances were set on
    w = nstjax.loss_weights(obj, style_weight=1e3)
    solver = nstjax.Solver(optimizer="adam", max_iter=10, lr=0.03)

    # loss and gradient at one image
    targets = compute_targets(vgg, jnp.asarray(content), [jnp.asarray(style)], objective=obj)
    f = jax.jit(jax.value_and_grad(lambda x: total_loss(x, vgg, targets, w, key, objective=obj)))
    v1, g1 = f(jnp.asarray(content) * 0.9)
    mesh = spatial_mesh()
    xs = shard_rows(np.asarray(content) * 0.9, mesh)
    v4, g4 = f(xs)

    one = nstjax.stylize(vgg, jnp.asarray(content), jnp.asarray(style), key=key, objective=obj,
                         weights=w, solver=solver)
    four = stylize_sharded(vgg, content, style, key=key, objective=obj, weights=w,
                           solver=solver)
    print(json.dumps({
        "value": [float(v1), float(v4)],
        "grad_err": float(jnp.abs(np.asarray(g4) - np.asarray(g1)).max()),
        "grad_max": float(jnp.abs(g1).max()),
        "grad_devices": len(g4.sharding.device_set),
        "loss": [float(one.loss), float(four.loss)],
        "image_err": float(np.abs(np.asarray(four.image) - np.asarray(one.image)).max()),
        "image_spec": str(four.image.sharding.spec) if hasattr(four.image.sharding, "spec")
                      else "",
        "image_devices": len(four.image.sharding.device_set)}))
""")


@pytest.mark.integration
def test_rows_over_four_devices_equal_one_device():
    """Loss to 1e-5, gradient to 1e-4 of its largest entry, and 10 Adam steps to 1e-4 in
    every pixel (reductions are summed in another order over the devices); the result stays
    split over all 4 devices."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    v1, v4 = r["value"]
    assert abs(v4 - v1) <= 1e-5 * abs(v1), r
    assert r["grad_err"] <= 1e-4 * r["grad_max"], r
    assert r["grad_devices"] == 4, r
    l1, l4 = r["loss"]
    assert abs(l4 - l1) <= 1e-4 * abs(l1), r
    assert r["image_err"] <= 1e-4, r
    assert r["image_devices"] == 4 and "'rows'" in r["image_spec"], r
