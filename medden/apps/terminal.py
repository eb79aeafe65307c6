"""What the long commands show in a terminal while they run: progress bars and status lines.

The library reports progress to callbacks (:class:`medden.apps.batch_denoise.ItemProgress`,
:class:`medden.engines.input_fit.FitProgress`, the benchmark's case counter); this module
renders them, on stderr so that stdout keeps the results. Bars draw only on a terminal
(tqdm's ``disable=None``); with ``verbosity`` :data:`QUIET` nothing is drawn or printed, with
:data:`VERBOSE` every finished series gets a line.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["NORMAL", "QUIET", "VERBOSE", "DenoiseProgress", "FitProgressLine", "say"]

QUIET, NORMAL, VERBOSE = 0, 1, 2


def say(text: str, verbosity: int, level: int = NORMAL, stream: TextIO | None = None) -> None:
    """Print ``text`` when ``verbosity`` is at least ``level`` (to stdout unless ``stream``)."""
    if verbosity >= level:
        print(text, file=stream or sys.stdout, flush=True)


class DenoiseProgress:
    """Render ``medden denoise``'s :class:`~medden.apps.batch_denoise.ItemProgress` events: one bar
    per series or file (``[3/12] MR T1 axial (study/3)``, slices as units), a line per failure
    (with its reason) and, when verbose, a line per finished item.

    Args:
        verbosity: :data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE`.
        stream: where bars and lines go (default stderr).
    """

    def __init__(self, verbosity: int = NORMAL, stream: TextIO | None = None) -> None:
        self.verbosity, self.stream = verbosity, stream or sys.stderr
        self._bar: Any = None
        self._index = 0

    def __call__(self, event: Any) -> None:
        if self.verbosity <= QUIET:
            return
        if event.index != self._index:
            self.close()
            self._index = event.index
            if event.status is None:
                self._open(event)
        if self._bar is not None:
            if event.total and self._bar.total != event.total:
                self._bar.total = event.total
            self._bar.n = event.done
            self._bar.refresh()
        if event.status is not None:
            self.close()
            head = f"[{event.index}/{event.count}] {event.label}"
            if event.status == "failed":
                print(f"{head}: failed: {event.reason}", file=self.stream, flush=True)
            elif self.verbosity >= VERBOSE:
                print(f"{head}: {event.status}", file=self.stream, flush=True)

    def _open(self, event: Any) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=event.total or None, desc=f"[{event.index}/{event.count}] {event.label}",
                         unit="slice", file=self.stream, disable=None, leave=False, dynamic_ncols=True)

    def close(self) -> None:
        """Remove the bar being drawn, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FitProgressLine:
    """Render ``--fit``'s :class:`~medden.engines.input_fit.FitProgress`: the held-out loss, the best
    so far and the time left, one line per held-out evaluation (redrawn in place on a terminal)."""

    def __init__(self, verbosity: int = NORMAL, stream: TextIO | None = None) -> None:
        self.verbosity, self.stream = verbosity, stream or sys.stderr
        self._drawn = False

    def __call__(self, event: Any) -> None:
        if self.verbosity <= QUIET:
            return
        text = (f"fit: {event.seconds:4.0f} s, {max(event.seconds_left, 0):4.0f} s left, iteration {event.iteration}, "
                f"held-out loss {event.loss:.4g} (base {event.base_loss:.4g}, best {event.best_loss:.4g})")
        on_terminal = self.stream.isatty() and self.verbosity < VERBOSE
        print(("\r" + text + "\x1b[K") if on_terminal else text, end="" if on_terminal else "\n",
              file=self.stream, flush=True)
        self._drawn = on_terminal

    def close(self) -> None:
        """End the line redrawn in place, if any."""
        if self._drawn:
            print(file=self.stream, flush=True)
            self._drawn = False
