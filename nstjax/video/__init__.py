"""Video: temporally consistent style transfer (Ruder, Dosovitskiy and Brox, GCPR 2016).

``flow`` (OpenCV optical flow and the forward-backward consistency weights), ``warp``
(bilinear warping in JAX), ``temporal`` (weights of the long-term loss, the temporal
error), ``frames`` (decoding and encoding with PyAV and Pillow), ``driver`` (the
sequential and the multi-pass algorithms, resumable).
"""
