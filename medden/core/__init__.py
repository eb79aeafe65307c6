"""Core: the pieces every other layer builds on, depending on nothing else in medden.

``validation`` (argument checks with messages that name the fix), ``keys`` (dictionary keys),
``fourier`` (batched k-space operators), ``intensity`` (the range mapped to [0, 1]), ``noise_estimation`` (noise level from the image
alone), ``variance_stabilization`` (Anscombe and generalised Anscombe transforms),
``protocols`` (the seeds' noise levels and schedules, used by code and bundle configs).
"""
