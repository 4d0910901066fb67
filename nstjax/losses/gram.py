"""The Gram style methods, registered: ``gram`` (Gatys' 1/(4N²M²)), ``gram-gamma``,
``gram-hw`` and ``gram-chw`` (jcjohnson/neural-style's, the default); their functions are
:mod:`nstjax.losses.core`'s (mathur2017 eq. 2-4; stylerep eq. 1.2-1.3)."""

from __future__ import annotations

from nstjax.losses import core as losses
from nstjax.losses.registry import register_builtin as register_style_loss


@register_style_loss("gram", target=losses.gram_matrix, scale=0.3,
                     reference="mathur2017 eq. 2-4 (1/(4N²M²))")
def gram(f, t, *, hyper, key, mask=None):
    return losses.gram_loss(f, t, mask=mask)


@register_style_loss("gram-gamma", target=losses.gram_matrix, scale=0.075,
                     reference="stylerep eq. 1.2-1.3 (γ = 1/(c²w²h²))")
def gram_gamma(f, t, *, hyper, key, mask=None):
    return losses.gram_loss_gamma(f, t, mask=mask)


@register_style_loss("gram-hw", target=losses.gram_matrix, scale=2.9e-7,
                     reference="Gram / HW, summed squared error")
def gram_hw(f, t, *, hyper, key, mask=None):
    return losses.gram_loss_hw(f, t, mask=mask)


# jcjohnson/neural-style's StyleLoss (neural_style.lua): 100 · mean((G − A)/(C·H·W))² per layer
# against 5 · mean (F − P)² at relu4_2.  Against the mse content loss (CONTENT_UNIT) that is
# λ = 0.2 at β = 100; the default takes a third of it, λ = 0.2/3 (the content three times
# heavier), because the default's coarse-to-fine schedule runs 40 iterations at the full size
# where the classic tool runs 500 (benchmarks/classic_look.py).
CLASSIC_CHW_SCALE = 0.2 / 3.0 * (512.0 * 768.0) / 2.0
CLASSIC_SOURCE = ("set, not measured: α = 1, β = 100 is jcjohnson/neural-style's default "
                  "balance (style 100, content 5) with the content 3× heavier; "
                  "benchmarks/classic_look.py")


@register_style_loss("gram-chw", target=losses.gram_matrix, scale=CLASSIC_CHW_SCALE,
                     scale_source=CLASSIC_SOURCE,
                     reference="Gram / CHW, mean squared error (jcjohnson/neural-style's "
                     "StyleLoss; the default style method)")
def gram_chw(f, t, *, hyper, key, mask=None):
    return losses.gram_loss_chw(f, t, mask=mask)
