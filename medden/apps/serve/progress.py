"""Where a running upload stands, for the page to poll while ``POST /api/denoise`` works.

The page makes a random token (``crypto.getRandomValues``), sends it with the upload in the form
field :data:`PROGRESS_FIELD`, and polls ``GET /api/progress/{token}`` until the POST answers. The
server reports what it is really doing: waiting for another upload's denoising to finish,
decoding, ``k`` of ``N`` slices denoised (as :meth:`medden.bundle.Bundle.denoise` reports them
from its inferers: slices, windows, ensemble views), writing the downloads. A
:class:`Progress` holds stage names and counts only, never a file name or anything read
from the file.

The upload itself is measured in the browser (``XMLHttpRequest`` upload events): the server
sees the body only as it parses it.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass

from medden.apps.serve.errors import UploadError

__all__ = ["PROGRESS_FIELD", "STAGES", "Progress", "ProgressBoard", "check_token"]

#: The form field that carries the page's progress token (optional).
PROGRESS_FIELD = "progress"
#: The stages in order, with the share of the bar each starts at.
STAGES = {"queued": 0.0, "decoding": 0.02, "denoising": 0.1, "writing": 0.9, "done": 1.0, "failed": 1.0}
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: How long a finished entry stays readable, in seconds (the page's last poll comes after the answer).
KEEP_SECONDS = 120.0


def check_token(token: str) -> str:
    """Return ``token`` if it is 16 to 64 characters of ``A-Z a-z 0-9 _ -``.

    Raises:
        UploadError: 400, naming the rule (the token itself is not repeated).
    """
    if not _TOKEN.fullmatch(token):
        raise UploadError(400, f"the form field {PROGRESS_FIELD!r} must be a random token of 16 to 64 letters, "
                               "digits, '_' or '-'; leave it out to run without progress reports.")
    return token


@dataclass
class Progress:
    """One upload's state: ``stage`` (a key of :data:`STAGES`), ``done`` of ``total`` steps of
    that stage, ``fraction`` of the whole work in ``[0, 1]`` and a sentence for the page."""

    stage: str = "queued"
    done: int = 0
    total: int = 0
    fraction: float = 0.0
    message: str = "waiting to start"
    updated: float = 0.0


class ProgressBoard:
    """Token -> :class:`Progress` of the uploads running now and those finished in the last
    :data:`KEEP_SECONDS`; at most ``max_entries`` (oldest dropped). Thread-safe.

    Example:
        >>> board = ProgressBoard()
        >>> board.update("t" * 16, "denoising", 3, 10, "denoising slice 3 of 10")
        >>> board.get("t" * 16)["fraction"]
        0.34
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Progress] = OrderedDict()
        self._lock = threading.Lock()

    def update(self, token: str | None, stage: str, done: int = 0, total: int = 0, message: str = "") -> None:
        """Record that upload ``token`` is at ``stage``, ``done`` of ``total`` (no-op for ``None``)."""
        if token is None:
            return
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}.")
        start = STAGES[stage]
        following = [share for share in STAGES.values() if share > start]
        end = min(following) if following else start
        fraction = start + (end - start) * (done / total if total else 0.0)
        now = time.monotonic()
        with self._lock:
            self._entries[token] = Progress(stage, done, total, round(fraction, 4), message or stage, now)
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries or (
                    self._entries and self._expired(next(iter(self._entries.values())), now)):
                self._entries.popitem(last=False)

    def get(self, token: str) -> dict | None:
        """The progress of ``token`` as a dict (``stage``, ``done``, ``total``, ``fraction``,
        ``message``), or None when unknown or expired."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or self._expired(entry, time.monotonic()):
                return None
            out = asdict(entry)
        del out["updated"]
        return out

    @staticmethod
    def _expired(entry: Progress, now: float) -> bool:
        return entry.stage in ("done", "failed") and now - entry.updated > KEEP_SECONDS
