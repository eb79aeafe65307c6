"""Applications: the commands built on the library and the bundle layer.

``cli`` (the ``medden`` command), ``batch_denoise`` (``medden denoise``), ``fit``
(``medden denoise --fit``), ``demo``, ``export``, ``serve`` (the web viewer) and ``benchmark``.
Nothing in the library (``medden.core``, ``io``, ``transforms``, ``losses``, ``networks``,
``metrics``, ``data``, ``anchors``, ``engines``, ``inference``) or in ``medden.bundle``
imports from here.
"""
