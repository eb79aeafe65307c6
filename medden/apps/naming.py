"""How ``medden denoise`` names series to people and folders to file systems.

* :func:`printable`: text from a file header (a series description) made safe for a terminal
  or a log: control and format characters dropped, whitespace collapsed, cut to a length.
* :func:`series_label`: the name the terminal gives a DICOM series: modality, series
  description and input folder, never patient fields.
* ``--name-template`` (in the dcm2niix spirit): :func:`parse_name_template` checks it,
  :func:`render_name` names one derived series' folder from :data:`NAME_FIELDS`, made safe by
  :func:`safe_filename`, and :func:`series_folder_names` keeps a run's names unique.

Only these header fields are ever read here: Modality, SeriesNumber, SeriesDescription (not
patient identifiers); patient name, ID and birth date never reach a label or a folder name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_NAME_TEMPLATE", "NAME_FIELDS", "PATIENT_FIELDS", "collision_suffix", "parse_name_template",
           "printable", "render_name", "safe_filename", "series_fields", "series_folder_names", "series_label"]


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


#: ``--name-template`` fields: letter -> what it stands for (none is a patient field)
NAME_FIELDS = {
    "m": "modality (MR, CT, ...)",
    "s": "series number of the source series",
    "d": "series description of the source series",
    "u": "SeriesInstanceUID of the new, derived series",
}
#: dcm2niix fields medden refuses: they would put patient identifiers in folder names
PATIENT_FIELDS = {"i": "patient ID", "n": "patient name", "b": "birth date"}
#: the default ``--name-template``: modality, series number, series description
DEFAULT_NAME_TEMPLATE = "%m_%s_%d"
#: longest folder name made from a template (before a collision suffix)
NAME_LIMIT = 100
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def parse_name_template(template: str) -> list[tuple[str, str | None]]:
    """``template`` as ``(literal text, field letter or None)`` pieces, checked.

    ``%m %s %d %u`` are the fields of :data:`NAME_FIELDS`; ``%%`` is a percent sign.

    Raises:
        ValueError: an unknown or patient field, a lone ``%`` at the end, a path separator, or
            a template without any field.
    """
    if not isinstance(template, str):
        raise TypeError(f"the name template must be a str, got {type(template).__name__}.")
    if "/" in template or "\\" in template:
        raise ValueError(f"name template {template!r} holds a path separator; a template names one folder "
                         "(fields: " + _fields_help() + ").")
    pieces, literal, k = [], "", 0
    while k < len(template):
        char = template[k]
        if char != "%":
            literal += char
            k += 1
            continue
        if k + 1 == len(template):
            raise ValueError(f"name template {template!r} ends with a lone '%'; write '%%' for a percent sign.")
        field = template[k + 1]
        k += 2
        if field == "%":
            literal += "%"
        elif field in NAME_FIELDS:
            pieces.append((literal, field))
            literal = ""
        elif field in PATIENT_FIELDS:
            raise ValueError(f"name template {template!r}: %{field} ({PATIENT_FIELDS[field]}) is refused: medden never "
                             "puts patient identifiers in file names; use " + _fields_help() + ".")
        else:
            raise ValueError(f"name template {template!r}: unknown field %{field}; the fields are " + _fields_help()
                             + ".")
    if not pieces:
        raise ValueError(f"name template {template!r} has no field, so every series would get the same folder; "
                         "use " + _fields_help() + ".")
    pieces.append((literal, None))
    return pieces


def _fields_help() -> str:
    return ", ".join(f"%{k} {v}" for k, v in NAME_FIELDS.items())


def safe_filename(text: str, limit: int = NAME_LIMIT) -> str:
    """``text`` as a portable folder name: accents removed (NFKD), every character but ASCII
    letters, digits and ``. _ + -`` replaced by ``_``, runs of ``_`` collapsed, ``. _ -`` stripped
    from both ends (no hidden names, no ``..``, no leading dash), cut to ``limit``; ``""`` if
    nothing is left. Windows device names (``CON``, ``NUL``, ...) get a leading ``_``.

    Example:
        >>> safe_filename("../../etc/passwd"), safe_filename("Kopf  ü ax/T1"), safe_filename("...")
        ('etc_passwd', 'Kopf_u_ax_T1', '')
    """
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", ascii_text)
    name = re.sub(r"_+", "_", name)
    name = re.sub(r"\.{2,}", ".", name).strip("._-")[:limit].strip("._-")
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name


def render_name(pieces: list[tuple[str, str | None]], fields: Mapping[str, str], new_uid: str = "") -> str:
    """The folder name of one series from a parsed template (:func:`parse_name_template`).

    Field values are made safe one by one (:func:`safe_filename`), so a description such as
    ``../../etc`` cannot leave OUTPUT; an empty result becomes ``"series"``.

    Args:
        fields: :func:`series_fields` of the source series.
        new_uid: the derived series' UID, for ``%u``.
    """
    values = {"m": fields.get("modality", ""), "s": fields.get("series_number", ""),
              "d": fields.get("series_description", ""), "u": new_uid}
    text = "".join(literal + (safe_filename(values[field]) if field else "") for literal, field in pieces)
    return safe_filename(text) or "series"


def collision_suffix(key: str) -> str:
    """``_`` and 8 hex digits of the SHA-256 of ``key`` (a source series UID): what tells apart
    series whose template names are the same, the same on every run."""
    return "_" + hashlib.sha256(str(key).encode()).hexdigest()[:8]


def series_folder_names(pieces: list[tuple[str, str | None]], series: Mapping[str, Mapping[str, str]]
                        ) -> dict[str, str]:
    """Template names of every series of a run (``{source series UID: fields}``), unique: where
    several series get the same name (compared without case, as some file systems do), each gets
    :func:`collision_suffix` of its UID. A template with ``%u`` is unique by itself; its names
    hold ``%u``'s value only once the new UID is known (:func:`render_name` at write time), so
    here they are rendered without it."""
    names = {key: render_name(pieces, fields) for key, fields in series.items()}
    if any(field == "u" for _, field in pieces):
        return names
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    return {key: name + collision_suffix(key) if counts[name.lower()] > 1 else name for key, name in names.items()}
