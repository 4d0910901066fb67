"""Memory estimates, so a run that cannot fit is refused before it starts."""

from __future__ import annotations

import os

from nstjax.vgg import BLOCK_SIZES, LAYERS, layer_depth

_WIDTHS = (64, 128, 256, 512, 512)


def activation_elements(height: int, width: int, deepest: str) -> int:
    """Number of float32 activations of one forward pass up to ``deepest`` (inclusive)."""
    total, h, w = 0, height, width
    stop = layer_depth(deepest)
    for name in LAYERS[: stop + 1]:
        block = int(name[4])
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        total += h * w * _WIDTHS[block - 1]
    return total


def estimate_transfer_bytes(height: int, width: int, *, layers, history_size: int = 10,
                            remat: bool = False, members: int = 1) -> int:
    """Peak bytes of one objective evaluation with its gradient, plus optimiser state.

    Counts the forward activations kept for the backward pass (conv outputs and ReLU
    outputs), one gradient buffer of the largest activation, the VGG parameters and the
    L-BFGS history (``2·m`` images).  With ``remat`` only one block's activations are live.
    ``members`` multiplies the per-image part (sweeps).
    """
    deepest = max(layers, key=layer_depth)
    act = activation_elements(height, width, deepest)
    if remat:
        act = act // len(BLOCK_SIZES) + height * width * 64 * 2
    largest = height * width * 64
    image = height * width * 3
    per_member = 4 * (act + 2 * largest + (2 * history_size + 4) * image)
    params = 4 * 20_024_384
    return members * per_member + params


def available_bytes() -> int:
    """Memory of the default JAX device: GPU/TPU memory if reported, else physical RAM."""
    try:
        import jax
        stats = jax.devices()[0].memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"])
    except Exception:  # noqa: BLE001 -- a backend without memory stats
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
