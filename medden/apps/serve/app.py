"""The FastAPI application behind ``medden serve`` (see :mod:`medden.apps.serve`).

Routes:

* ``GET /``: the page (``static/index.html``, plain JavaScript, nothing fetched from elsewhere).
* ``GET /api/health``: ``{"status": "ok"}``.
* ``GET /api/bundles``: the offered bundle names, the default, the upload limit and the
  accepted types.
* ``POST /api/denoise``: a ``multipart/form-data`` form with ``file``, ``bundle`` and, optionally,
  ``progress`` (a random token of the page); answers the job summary (:func:`_process`) or
  ``{"detail": message}`` with 400, 413, 415 or 422.
* ``GET /api/progress/{token}``: where that upload stands (:mod:`~medden.apps.serve.progress`).
* ``GET /api/jobs/{job}/slices/{k}/{noisy|denoised|difference}.f32``: one slice of a view in the
  image's units, raw little-endian float32, rows down the image (what the page windows and measures).
* ``GET /api/jobs/{job}/slices/{k}/{noisy|denoised|difference}.png``: one slice of a view as PNG in
  the summary's percentile window (``windows``).
* ``GET /api/jobs/{job}/download/{dicom|nifti|png}``: the result, as an attachment.

No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations
(``Request``, imported inside :func:`create_app`) at definition time.
"""

import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medden.apps.serve.bundles import BundleCatalogue, denoise_volume
from medden.apps.serve.display import display_volume, slice_png, slice_raw, view_slice, viewer_info, windows
from medden.apps.serve.errors import UploadError
from medden.apps.serve.inputs import ACCEPTED, read_upload
from medden.apps.serve.progress import PROGRESS_FIELD, ProgressBoard, check_token
from medden.apps.serve.results import Download, Job, JobStore, dicom_zip, nifti_bytes, png_bytes
from medden.apps.serve.security import RequestGuard, accepted_hosts
from medden.apps.serve.upload import Upload, receive_upload
from medden.core.validation import check_int
from medden.metrics.harm import harm_flags

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_UPLOAD_MB", "INSTALL_SERVE_EXTRA", "create_app", "require_serve_extra"]

INSTALL_SERVE_EXTRA = 'pip install "medden[serve]"'
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_UPLOAD_MB = 100
#: A zip may unpack to this many times the upload limit.
ZIP_EXPANSION = 4
_MEDIA_TYPES = {"dicom": "application/zip", "nifti": "application/gzip", "png": "image/png"}
logger = logging.getLogger(__name__)


def require_serve_extra() -> None:
    """Import FastAPI, uvicorn and python-multipart, or say which extra installs them.

    Raises:
        ImportError: one is missing; the message names ``pip install "medden[serve]"``.
    """
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ImportError(f"the web viewer needs the 'serve' extra, but {err.name or 'a package'!r} is not "
                          f"installed; install it with: {INSTALL_SERVE_EXTRA}") from err


def create_app(bundles: Sequence[str | os.PathLike] | None = None, *,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
               temp_root: str | os.PathLike | None = None, max_jobs: int = 8, max_job_bytes: int = 1 << 30,
               device: str | None = None, backend: str = "auto", preload: bool = False,
               host: str = DEFAULT_HOST, allowed_hosts: Sequence[str] = (), trust_bundles: bool = False) -> "FastAPI":
    """The viewer as a FastAPI application (run it with uvicorn, or :func:`medden.apps.serve.run_server`).

    Args:
        bundles: shipped bundle names or bundle folders to offer; default: every shipped
            bundle that denoises images (:class:`~medden.apps.serve.bundles.BundleCatalogue`).
        max_upload_bytes: the largest file accepted; a zip may unpack to
            :data:`ZIP_EXPANSION` times as much.
        temp_root: where each request's temporary folder is made (created if missing);
            default: the system's temporary folder.
        max_jobs: how many recent results are kept for display and download.
        max_job_bytes: the memory those results may hold together (the newest is always kept).
        device: where the networks run; default: each bundle's own choice.
        backend: what runs the networks: ``auto`` (as ``medden denoise``) or one of
            :data:`medden.bundle.exports.BACKENDS`.
        preload: load the default bundle now, so that the first upload does not wait for it.
        host: the address the server listens on; requests whose Host header names another
            server are refused with 400 (:class:`~medden.apps.serve.security.RequestGuard`:
            loopback names for a loopback bind; any name for ``0.0.0.0`` unless ``allowed_hosts``
            is given), and state-changing requests from another origin with 403.
        allowed_hosts: more Host names to answer, e.g. the one a reverse proxy forwards.
        trust_bundles: load the bundle folders in ``bundles`` that medden does not ship (their
            configs run code; see :mod:`medden.bundle.resolve`); else they are refused.

    Raises:
        ImportError: the ``serve`` extra is not installed.
        TypeError: ``max_upload_bytes`` is not an int, or a host name is not a str.
        ValueError: ``max_upload_bytes < 1``, ``host`` or an ``allowed_hosts`` entry is not a
            host name or IP address, or a bad bundle list (see ``BundleCatalogue``).
        FileNotFoundError: an unknown bundle.
        UntrustedBundleError: a bundle folder medden does not ship, without ``trust_bundles``.
    """
    require_serve_extra()
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    check_int(max_upload_bytes, "max_upload_bytes", hint="it is a number of bytes")
    hosts = accepted_hosts(host, allowed_hosts)
    catalogue = BundleCatalogue(bundles, device, backend, trust=trust_bundles)
    if preload:
        catalogue.get(catalogue.default)
    store = JobStore(max_jobs, max_job_bytes)
    board = ProgressBoard()
    if temp_root is not None:
        Path(temp_root).mkdir(parents=True, exist_ok=True)
    one_at_a_time = threading.Lock()  # one denoising at a time: CPU/GPU bound, and the DICOM reader wants one thread
    static = Path(__file__).resolve().parent / "static"

    app = FastAPI(title="medden", docs_url=None, redoc_url=None, openapi_url=None)  # the docs pages load a CDN
    app.mount("/static", StaticFiles(packages=[("medden.apps.serve", "static")]), name="static")
    app.add_middleware(RequestGuard, accepted=hosts)

    @app.exception_handler(UploadError)
    async def refused(request: Request, err: UploadError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:  # logged by the server with its traceback
        return JSONResponse({"detail": f"the server failed on this request ({type(err).__name__}); the server's "
                                       "log has the details."}, status_code=500)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/bundles")
    def list_bundles() -> dict:
        return {"bundles": catalogue.names, "default": catalogue.default, "max_upload_bytes": max_upload_bytes,
                "accepted": ACCEPTED}

    @app.post("/api/denoise")
    async def denoise(request: Request) -> dict:
        with tempfile.TemporaryDirectory(prefix="medden-serve-", dir=temp_root) as tmp:
            upload = await receive_upload(request.headers, request.stream(), Path(tmp), max_upload_bytes)
            name = upload.fields.get("bundle") or catalogue.default
            catalogue.check(name)  # before any decoding
            token = upload.fields.get(PROGRESS_FIELD)
            token = None if token is None else check_token(token)
            board.update(token, "queued", message="waiting for the denoising of another upload to finish")
            try:
                job = await run_in_threadpool(_locked, one_at_a_time, _process, upload, name, catalogue, Path(tmp),
                                              ZIP_EXPANSION * max_upload_bytes, board, token)
            except BaseException:
                board.update(token, "failed", message="failed")
                raise
        store.add(job)
        board.update(token, "done", message="done")
        return job.summary

    @app.get("/api/progress/{token}")
    def progress(token: str) -> dict:
        state = board.get(check_token(token))
        if state is None:
            raise UploadError(404, "no upload with this progress token is running or recently finished.")
        return state

    def _job(job_id: str) -> Job:
        job = store.get(job_id)
        if job is None:
            raise UploadError(404, f"result {job_id[:40]!r} is not held (any more): the server keeps the last "
                                   f"{store.max_jobs}; upload the file again.")
        return job

    @app.get("/api/jobs/{job_id}/slices/{k}/{view}.png")
    def slice_image(job_id: str, k: int, view: str) -> Response:
        job = _job(job_id)
        low, high = job.summary["windows"]["difference" if view == "difference" else "image"]
        png = slice_png(view_slice(job.views, view, k), low, high)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/jobs/{job_id}/slices/{k}/{view}.f32")
    def slice_values(job_id: str, k: int, view: str) -> Response:
        raw = slice_raw(view_slice(_job(job_id).views, view, k))
        return Response(raw, media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/jobs/{job_id}/download/{fmt}")
    def download(job_id: str, fmt: str) -> Response:
        job = _job(job_id)
        if fmt not in job.downloads:
            raise UploadError(404, f"no {fmt[:40]!r} download for this result; it has: {', '.join(job.downloads)}.")
        item = job.downloads[fmt]
        return Response(item.content, media_type=item.media_type,
                        headers={"Content-Disposition": f'attachment; filename="{item.filename}"'})

    return app


def _locked(lock: threading.Lock, func, *args):
    with lock:
        return func(*args)


def _stem(filename: str) -> str:
    """A safe ASCII stem for download names: ``"CT small.dcm"`` -> ``"CT_small"``."""
    name = Path(filename.replace("\\", "/")).name
    for suffix in (".nii.gz", ".nii", ".dcm", ".zip", ".png", ".gz"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "image"


def _process(upload: Upload, bundle_name: str, catalogue: BundleCatalogue, folder: Path, max_unpacked: int,
             board: ProgressBoard | None = None, token: str | None = None) -> Job:
    """Decode, denoise and render one upload; everything it returns lives in memory.

    Args:
        upload, bundle_name, catalogue, folder, max_unpacked: the upload, what denoises it,
            the request's folder and the zip limit.
        board, token: where to report progress (nothing is reported without both).

    Returns:
        The :class:`Job`; its ``summary`` is ``{"job", "kind", "bundle", "backend", "shape": [C, H, W, D],
        "slices", "channels", "slice_url": URL template with ``{k}`` and ``{view}`` (PNG),
        "values_url": the same for raw float32 values, "downloads": {format: URL}, "windows",
        "info": :func:`~medden.apps.serve.display.viewer_info`, "notes", "warnings",
        "seconds"}``; ``warnings`` are the no-reference checks that say the result is worse
        than the upload (:func:`medden.metrics.harm.harm_flags`), also listed in ``notes``.

    Raises:
        UploadError: the file cannot be read (413, 415, 422) or denoised (422).
    """
    def report(stage: str, done: int = 0, total: int = 0, message: str = "") -> None:
        if board is not None:
            board.update(token, stage, done, total, message)

    started = time.perf_counter()
    report("decoding", message="reading the file")
    image = read_upload(upload.path, upload.filename, folder, max_unpacked)
    report("decoding", 1, 2, "loading the bundle")
    bundle = catalogue.get(bundle_name)
    try:
        report("denoising", 0, 1, "denoising")
        denoised = denoise_volume(bundle, image.volume, lambda done, total: report(
            "denoising", done, total, f"denoised {done} of {total} slice(s)"))
    except UploadError:
        raise
    except ValueError as err:
        raise UploadError(422, f"this image could not be denoised: {err}") from None
    report("writing", 0, 2, "checking the result and making the display slices")
    warnings = [flag.message for flag in harm_flags(image.volume, denoised)]
    image.notes.extend(f"warning: {message}" for message in warnings)
    shown = windows(image.volume, denoised)
    views = {"noisy": display_volume(image.volume), "denoised": display_volume(denoised)}
    report("writing", 1, 2, "writing the downloads")
    stem, job_id = _stem(upload.filename), secrets.token_urlsafe(16)
    downloads = {"nifti": Download(f"{stem}_denoised.nii.gz", _MEDIA_TYPES["nifti"],
                                   nifti_bytes(denoised, image.affine, image.flat, folder / "denoised.nii.gz"))}
    if image.series is not None:
        (folder / "derived").mkdir()
        try:
            content = dicom_zip(image.series, denoised, folder / "derived", bundle.name, bundle.parameters)
            downloads["dicom"] = Download(f"{stem}_denoised_dicom.zip", _MEDIA_TYPES["dicom"], content)
        except ValueError as err:  # e.g. a pixel encoding the derived-series writer does not support
            image.notes.append(f"no DICOM download: {err}")
    if image.png_bits is not None:
        downloads["png"] = Download(f"{stem}_denoised.png", _MEDIA_TYPES["png"], png_bytes(denoised, image.png_bits))
    base = f"/api/jobs/{job_id}"
    seconds = round(time.perf_counter() - started, 3)
    summary = {"job": job_id, "kind": image.kind, "bundle": bundle_name, "backend": bundle.backend, "shape": list(image.volume.shape),
               "slices": int(image.volume.shape[-1]), "channels": 3 if image.volume.shape[0] == 3 else 1,
               "slice_url": base + "/slices/{k}/{view}.png", "values_url": base + "/slices/{k}/{view}.f32",
               "downloads": {fmt: f"{base}/download/{fmt}" for fmt in downloads}, "windows": shown,
               "info": viewer_info(image, shown),
               "notes": image.notes, "warnings": warnings, "seconds": seconds}
    logger.info("job %s: %s %s denoised with %s in %.1f s", job_id, image.kind, "x".join(map(str, image.volume.shape)),
                bundle_name, seconds)
    return Job(job_id, summary, views, downloads)
