"""Terrain heightmaps: a third-party EDM consistency model searched with a differentiable slope verifier.

    import tts_fast as tts
    from tts_fast.terrain import SlopeTarget, terrain_model
    model = terrain_model([0.25, 0.5, 0.75])                  # prompt rows = difficulties
    result = tts.search(model, SlopeTarget(0.03), "bfs_best", n_particles=4, num_steps=8)

Needs the ``terrain`` extra and the model package (see :mod:`tts_fast.terrain.onnx_model`).
Modules: ``onnx_model`` (the package's ONNX file, onnxruntime, the onnx2torch conversion),
``model`` (the Denoiser, through :class:`tts_fast.models.EDMDenoiser`), ``heights`` (metres,
slopes, autocorrelation) and ``verifiers`` (:class:`SlopeTarget`).
"""

from .heights import lag1_autocorrelation, mean_slope, to_metres
from .model import terrain_model
from .verifiers import SlopeTarget

__all__ = ["terrain_model", "SlopeTarget", "to_metres", "mean_slope", "lag1_autocorrelation"]
