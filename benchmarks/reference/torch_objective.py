"""The Gatys objective in PyTorch on nstjax's own weights: the reference of the benchmarks.

Used by ``benchmarks/optimizers.py``, ``benchmarks/gpu.py`` and
``benchmarks/time_to_score.py`` to time and check nstjax
against PyTorch on the same weights, images and objective.  torch is optional: it is
imported only when :func:`torch_objective` runs.
"""

from __future__ import annotations

import jax
import numpy as np

from nstjax.model.pooling import L2_POOL_SCALE
from nstjax.model.vgg import LAYERS
from nstjax.objective.config import LossWeights, Objective


def reference_spec(objective: Objective, weights: LossWeights) -> dict:
    """The numbers :func:`torch_objective` needs to compute nstjax's objective.

    Covers one Gram style method (``"gram"``, Gatys' ``1/(4N²M²)``, or ``"gram-chw"``, the
    default, ``mean((G − A)/(N·M))²``) and one style image.
    """
    if objective.style_losses not in (("gram",), ("gram-chw",)):
        raise ValueError("the PyTorch reference implements the Gram style losses (gram, "
                         "gram-chw) only")
    w = jax.tree.map(np.asarray, weights)
    return dict(style_loss=objective.style_losses[0],
                content_layers=objective.content_layers, style_layers=objective.style_layers,
                content_loss=objective.content_loss, pooling=objective.pooling,
                alpha=float(w.content_weight), tau=float(w.tv_weight),
                content_layer_weights=[float(v) for v in w.content_layer_weights],
                style_layer_weights=[float(v) for v in w.style_layer_weights],
                # β Σ_m μ_m λ_m Σ_s b_s: one method, one style image
                style_factor=float(w.style_weight * w.style_mix[0] * w.style_scales[0]
                                   * w.style_blend[0]))


def torch_objective(vgg, content, style, spec: dict, *, device: str = "cpu"):
    """The same objective in PyTorch, on the same weights (HWIO -> OIHW): ``x -> loss``.

    Args:
      vgg: nstjax's network parameters (their preprocessing is applied too).
      content, style: ``f32[H, W, 3]`` RGB in [0, 1].
      spec: from :func:`reference_spec`.
      device: torch device of the tensors.

    Returns:
      ``loss(image: torch.Tensor[H, W, 3]) -> torch scalar``.
    """
    import torch
    import torch.nn.functional as F

    def T(a):
        return torch.as_tensor(np.array(a), dtype=torch.float32, device=device)

    if spec["content_loss"] not in ("sum", "mse"):
        raise ValueError(f"unknown content loss {spec['content_loss']!r}")
    half_sum = spec["content_loss"] == "sum"
    mean, std = T(vgg.mean), T(vgg.std)
    params = {name: (T(np.ascontiguousarray(np.asarray(p["kernel"]).transpose(3, 2, 0, 1))),
                     T(p["bias"])) for name, p in vgg.params.items()}
    wanted = set(spec["content_layers"]) | set(spec["style_layers"])
    layers = LAYERS[: max(LAYERS.index(n) for n in wanted) + 1]
    pool = {"avg": F.avg_pool2d, "max": F.max_pool2d,
            "l2": lambda x, k: L2_POOL_SCALE * F.lp_pool2d(x, 2, k)}[spec["pooling"]]

    def features(image):  # f32[H, W, 3] in [0, 1]
        x = image * float(vgg.scale)
        if bool(vgg.bgr):
            x = x.flip(-1)
        x = ((x - mean) / std).permute(2, 0, 1).unsqueeze(0)
        out = {}
        for name in layers:
            if name.startswith("conv"):
                k, b = params[f"block{name[4]}_conv{name[6]}"]
                x = F.conv2d(x, k, b, padding=1)
            elif name.startswith("relu"):
                x = F.relu(x)
            else:
                x = pool(x, 2, 2)
            if name in wanted:
                out[name] = x
        return out

    def gram(f):
        f = f.reshape(f.shape[1], -1)
        return f @ f.t()

    with torch.no_grad():
        p = features(T(content))
        a = features(T(style))
        p = {l: p[l] for l in spec["content_layers"]}
        # per position: the style's statistics whatever its size (compute_targets)
        a = {l: gram(a[l]) / (a[l].shape[2] * a[l].shape[3]) for l in spec["style_layers"]}
    chw = spec.get("style_loss", "gram") == "gram-chw"

    def loss(image):
        f = features(image)
        content_term = sum(w * (0.5 * ((f[l] - p[l]) ** 2).sum() if half_sum
                                else ((f[l] - p[l]) ** 2).mean())
                           for w, l in zip(spec["content_layer_weights"], spec["content_layers"]))
        style_term = 0.0
        for w, l in zip(spec["style_layer_weights"], spec["style_layers"]):
            _, c, h, ww = f[l].shape
            d = gram(f[l]) - (h * ww) * a[l]
            style_term = style_term + w * ((d / (c * h * ww)) ** 2).mean() if chw else \
                style_term + w * (d ** 2).sum() / (4.0 * c * c * (h * ww) ** 2)
        total = spec["alpha"] * content_term + spec["style_factor"] * style_term
        if spec["tau"]:
            tv = (((image[1:] - image[:-1]) ** 2).sum()
                  + ((image[:, 1:] - image[:, :-1]) ** 2).sum())
            total = total + spec["tau"] * (tv if half_sum else tv * 255.0 ** 2 / image.numel())
        return total

    return loss
