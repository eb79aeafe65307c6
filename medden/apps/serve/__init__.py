"""``medden serve``: a small local web viewer for denoising one image with a bundle.

A user uploads a DICOM file (or a ``.zip`` of one series), a NIfTI file or a PNG, picks a
bundle, watches the upload and the denoising progress, and reads noisy | denoised | difference
side by side with a radiology viewer's tools (window/level by drag and CT presets, linked zoom
and pan at full resolution, wheel and key slice scrolling, an ROI's mean and SD in HU,
orientation letters, modality, size and spacing; never patient data), then downloads the
result: a derived DICOM series (zipped) for DICOM input, NIfTI always, PNG for PNG input. The
server sends the slices' real values (raw float32) and the page windows and measures them. Denoising is that of ``medden denoise`` (the bundle's intensity percentiles
and smoothing, :func:`medden.inference.denoise_image`).

Why FastAPI + uvicorn and one static page with plain JavaScript (the ``serve`` extra): it
gives exact control over what matters here, the upload size limit (enforced while the body
streams to disk, :mod:`medden.apps.serve.upload`), the lifetime of temporary files and the bind
address, with a small dependency set, and a plain page that works offline (nothing is
fetched from the internet) and that a browser test drives deterministically. Gradio keeps
uploads in its own cache folder and is a heavy dependency; Streamlit reruns the whole
script on every interaction.

Guarantees:

* The server listens on 127.0.0.1 unless told otherwise, and answers only requests whose
  Host header names it (no DNS rebinding) and state changes (POST) from its own page only (no
  cross-site request forgery): :mod:`~medden.apps.serve.security`.
* Each upload is written into a fresh temporary folder that is deleted before the response
  is sent, also on errors. Results (the values shown, downloads) are kept in memory only, for
  the last few jobs (:class:`~medden.apps.serve.results.JobStore`).
* Too large a file (413), a wrong type (415), a file that cannot be decoded (422) and an
  unknown bundle (400) are answered with a sentence the page shows.
* Logs and messages hold job ids, kinds, shapes and timings, never file names, patient
  names or IDs.

Modules (imports point down: ``app`` uses the rest, which use :mod:`medden.io`,
:mod:`medden.inference` and :mod:`medden.apps.batch_denoise`): :mod:`~medden.apps.serve.upload` (streaming
receive), :mod:`~medden.apps.serve.inputs` (type detection, reading),
:mod:`~medden.apps.serve.bundles` (which bundles, loading, denoising), :mod:`~medden.apps.serve.display`
(slices, windows, geometry shown), :mod:`~medden.apps.serve.results` (downloads, job store),
:mod:`~medden.apps.serve.progress` (what a running upload reports),
:mod:`~medden.apps.serve.security` (Host and Origin checks),
:mod:`~medden.apps.serve.app` (routes). FastAPI is imported only when an app is made, so
importing this package needs no extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from medden.apps.serve.app import (DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, INSTALL_SERVE_EXTRA, create_app,
                                   require_serve_extra)

__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_PORT", "INSTALL_SERVE_EXTRA", "create_app",
           "require_serve_extra", "run_server", "serving"]

DEFAULT_PORT = 8000


def run_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
               bundles: Sequence[str | os.PathLike] | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20, backend: str = "auto",
               allowed_hosts: Sequence[str] = (), trust_bundles: bool = False) -> None:
    """Serve the viewer with uvicorn until interrupted (Ctrl+C).

    Args:
        host: the address to listen on; ``"0.0.0.0"`` exposes the viewer to the network,
            with no login, and answers any Host name unless ``allowed_hosts`` is given.
        port: the TCP port.
        bundles: see :func:`create_app`.
        max_upload_bytes: see :func:`create_app`.
        backend: see :func:`create_app`.
        allowed_hosts: more Host names to answer besides ``host``; see :func:`create_app`.
        trust_bundles: see :func:`create_app`.

    Raises:
        ImportError: the ``serve`` extra is not installed.
        ValueError, FileNotFoundError: bad arguments (see :func:`create_app`).
    """
    print("medden serve: loading the default bundle ...", flush=True)
    app = create_app(bundles, max_upload_bytes=max_upload_bytes, backend=backend, preload=True, host=host,
                     allowed_hosts=allowed_hosts, trust_bundles=trust_bundles)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host  # an IPv6 address goes in brackets in a URL
    print(f"medden serve: open http://{shown}:{port}/ in a browser (Ctrl+C stops the server)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


@contextmanager
def serving(app, start_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread on a free port of 127.0.0.1, for
    scripts and tests that drive the viewer from a browser.

    Yields:
        the base URL, ``http://127.0.0.1:<port>``; the server stops when the block ends.

    Raises:
        RuntimeError: the server did not start within ``start_timeout_s`` seconds.
    """
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the viewer's server did not start within {start_timeout_s:g} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
