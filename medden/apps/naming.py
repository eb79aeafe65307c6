"""How ``medden denoise`` names series to people and folders to file systems.

* :func:`printable`: text from a file header (a series description) made safe for a terminal
  or a log: control and format characters dropped, whitespace collapsed, cut to a length.
* :func:`series_label`: the name the terminal gives a DICOM series: modality, series
  description and input folder, never patient fields.

Only these header fields are ever read here: Modality, SeriesNumber, SeriesDescription (not
patient identifiers); patient name, ID and birth date never reach a label or a folder name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["printable", "series_fields", "series_label"]


def printable(text: Any, limit: int = 40) -> str:
    """``text`` as one safe line of at most ``limit`` characters.

    Control, format and unassigned characters (escape sequences, bidirectional overrides,
    NUL) are dropped, any run of whitespace becomes one space, and a longer text is cut,
    ending in ``...``. None becomes ``""``.

    Example:
        >>> printable("T1\\x1b[2J  axial\\n\\u202epost", limit=14)
        'T1[2J axial...'
    """
    if text is None:
        return ""
    kept = "".join(" " if c.isspace() or unicodedata.category(c).startswith("Z") else
                   "" if unicodedata.category(c).startswith("C") else c for c in str(text))
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[: max(limit - 3, 0)].rstrip() + "..."


def series_fields(header: Mapping[str, Any] | Any) -> dict[str, str]:
    """The naming fields of a series from its first header: ``modality``, ``series_number`` and
    ``series_description`` (:func:`printable`, up to 64 characters, DICOM's own limit), each
    ``""`` when absent."""
    get = header.get if hasattr(header, "get") else lambda key, default=None: getattr(header, key, default)
    number = get("SeriesNumber", None)
    return {"modality": printable(get("Modality", ""), 16),
            "series_number": "" if number in (None, "") else printable(number, 12),
            "series_description": printable(get("SeriesDescription", ""), 64)}


def series_label(fields: Mapping[str, str], folder: str | Path | None = None, limit: int = 60) -> str:
    """``"MR T1 axial (study1/series3)"``: modality, series description and input folder, for people."""
    name = " ".join(part for part in (fields.get("modality"), fields.get("series_description")) if part)
    name = printable(name or "series", limit)
    where = printable(Path(folder).as_posix(), 40) if folder not in (None, "", ".") else ""
    return f"{name} ({where})" if where else name
