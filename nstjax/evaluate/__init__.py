"""Measuring outputs: scores that no loss optimises (:mod:`nstjax.evaluate.score`).

``from nstjax.evaluate import score`` is the function; the module behind it is
``importlib.import_module("nstjax.evaluate.score")`` (the name ``nstjax.evaluate.score`` is
the function once this package is imported).
"""

from nstjax.evaluate.score import (
                                   CONTENT_LAYER,
                                   N_PROJECTIONS,
                                   STYLE_LAYERS,
                                   STYLE_MEASURES,
                                   ScoreResult,
                                   score,
)

__all__ = ["CONTENT_LAYER", "N_PROJECTIONS", "STYLE_LAYERS", "STYLE_MEASURES", "ScoreResult",
           "score"]
