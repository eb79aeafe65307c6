"""Progress of one inference call, reported to a callback the caller installs.

Inferers nest (a guard around a self-ensemble around a slice-stack inferer), so progress is
not threaded through their signatures: the caller installs a callback for the duration of a
call with :func:`reporting_progress`, inferers that loop over slices or windows call
:func:`report_progress` with what they have done of their own work, and wrappers that run
their base inferer several times (views, refinement steps) announce each run with
:func:`progress_part`, which maps the base inferer's ``(done, total)`` into the wrapper's.
Nothing here prints: rendering (a terminal bar, a log line) is the application's.

The callback receives ``(done, total)`` in work units of the outermost call, ``0 <= done <=
total``, never decreasing within one call.

Example:
    >>> seen = []
    >>> with reporting_progress(lambda done, total: seen.append((done, total))):
    ...     for view in range(2):
    ...         with progress_part(view, 2):
    ...             report_progress(1, 1)
    >>> seen
    [(1, 2), (2, 2)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["ProgressCallback", "count_windows", "progress_part", "report_progress", "reporting_progress",
           "run_base_inferer"]

#: ``callback(done, total)``: work done of the whole call so far
ProgressCallback = Callable[[int, int], None]
_CURRENT: ContextVar[ProgressCallback | None] = ContextVar("medden_inference_progress", default=None)


@contextmanager
def reporting_progress(callback: ProgressCallback | None) -> Iterator[None]:
    """Send the progress of inference run inside the ``with`` block to ``callback`` (None: to nobody)."""
    token = _CURRENT.set(callback)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def report_progress(done: int, total: int) -> None:
    """Report ``done`` of ``total`` units of the current (innermost) piece of work; a no-op
    when no callback is installed. ``done`` is clipped to ``[0, total]``."""
    callback = _CURRENT.get()
    if callback is not None and total > 0:
        callback(min(max(int(done), 0), int(total)), int(total))


@contextmanager
def progress_part(index: int, count: int) -> Iterator[None]:
    """Inside the block, progress reported as ``(done, total)`` counts as part ``index`` of ``count``
    equal parts of the enclosing work: ``(index * total + done, count * total)``."""
    outer = _CURRENT.get()
    if outer is None:
        yield
        return

    def inner(done: int, total: int) -> None:
        outer(index * total + done, count * total)

    token = _CURRENT.set(inner)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def count_windows(inferer: Any, shape: tuple[int, ...]) -> int | None:
    """How many network windows a MONAI ``SlidingWindowInferer`` (or ``SliceInferer``) runs on a
    batch of ``shape`` ``(B, C, *spatial)``, scanning as MONAI's ``sliding_window_inference`` does;
    None for any other inferer."""
    from monai.inferers import SliceInferer, SlidingWindowInferer
    from monai.utils import ensure_tuple_rep

    if not isinstance(inferer, SlidingWindowInferer):
        return None
    spatial = list(shape[2:])
    if isinstance(inferer, SliceInferer):  # a 2D window on every slice across spatial_dim
        roi = list(inferer.orig_roi_size)
        roi.insert(inferer.spatial_dim, 1)
    else:
        roi = list(ensure_tuple_rep(inferer.roi_size, len(spatial)))
    if len(roi) != len(spatial):
        return None
    overlaps = ensure_tuple_rep(inferer.overlap, len(spatial))
    windows = shape[0]
    for size, window, overlap in zip(spatial, roi, overlaps, strict=True):
        window = size if window is None or window <= 0 else int(window)
        size = max(size, window)  # MONAI pads an image smaller than the window
        if size > window:
            windows *= math.ceil((size - window) / max(int(window * (1 - overlap)), 1)) + 1
    return windows


def run_base_inferer(inferer: Callable, inputs: torch.Tensor, network: Callable, *args: Any,
                     **kwargs: Any) -> torch.Tensor:
    """``inferer(inputs, network, ...)``, reporting its windows as they run when it is one of
    MONAI's sliding-window inferers (which report nothing themselves) and a callback is installed."""
    total = count_windows(inferer, tuple(inputs.shape)) if _CURRENT.get() is not None else None
    if total is None:
        return inferer(inputs, network, *args, **kwargs)
    done = 0

    def counted(x: torch.Tensor, *a: Any, **k: Any) -> Any:
        nonlocal done
        out = network(x, *a, **k)
        done += x.shape[0]
        report_progress(done, total)
        return out

    return inferer(inputs, counted, *args, **kwargs)
