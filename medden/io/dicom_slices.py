"""Grouping, ordering and geometry checks for DICOM slices (private to the folder reader).

A *slice* is one frame of one file: a whole single-frame file, or frame ``f`` of a
multi-frame object. :func:`make_slices` turns a header into slices, :func:`split_slices`
divides one series' slices into consistent parts (one image layout, one orientation, one
slice per position) and :func:`order_slices` orders a part along the slice normal and
builds its affine. Nothing here reads pixel data. Notes quote only numbers and tag
keywords, never free-text tag values, so they cannot carry patient identifiers.

Positions and orientations are in DICOM's LPS patient space; affines are RAS, as in
:mod:`medden.io.dicom_series`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medden.io.dicom_series import LPS_TO_RAS, first_value, dicom_affine

ORIENTATION_TOL = 1e-3
"""Largest difference between direction cosines of slices in one stack (about 0.06 deg)."""
POSITION_TOL = 1e-2
"""Slices whose positions are closer than this (mm) share a position."""
SPACING_RTOL = 1e-2
"""Slice gaps that differ by more than this fraction of their mean are reported."""

# Attributes that tell apart repeats at one position (echoes, phases, b-values, ...), tried
# in this order when a series holds several slices per position: (keyword, functional groups).
_REPEAT_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("EchoNumbers", ()),
    ("EffectiveEchoTime", ("MREchoSequence",)),
    ("TemporalPositionIndex", ("FrameContentSequence",)),
    ("StackID", ("FrameContentSequence",)),
    ("TemporalPositionIdentifier", ()),
    ("AcquisitionNumber", ()),
    ("TriggerTime", ()),
    ("EchoTime", ()),
    ("InversionTime", ()),
    ("DiffusionBValue", ("MRDiffusionSequence",)),
    ("ImageType", ()),
)
_PLANE_GROUPS = {
    "ImagePositionPatient": ("PlanePositionSequence",),
    "ImageOrientationPatient": ("PlaneOrientationSequence",),
    "PixelSpacing": ("PixelMeasuresSequence",),
}


@dataclass(frozen=True, eq=False)
class Slice:
    """One frame of one DICOM file, with the header values that place it.

    Attributes:
        header: the file's dataset, read without pixel data.
        path: the file.
        frame: 0-based frame index in the file (0 for single-frame files).
        multiframe: True if the file holds more than one frame.
        position: ImagePositionPatient (LPS, mm) or None.
        orientation: ImageOrientationPatient (6 direction cosines) or None.
        instance: InstanceNumber or None.
    """

    header: Dataset
    path: Path
    frame: int
    multiframe: bool
    position: np.ndarray | None
    orientation: np.ndarray | None
    instance: int | None

    def value(self, keyword: str, groups: tuple[str, ...] = ()) -> object | None:
        """``keyword`` for this frame (top level, shared or per-frame functional groups)."""
        return first_value(self.header, keyword, groups, self.frame)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    def fallback_key(self) -> tuple:
        """Order when positions are unusable: InstanceNumber, then frame, then file name."""
        instance = self.instance if self.instance is not None else np.inf
        return (instance, self.frame, str(self.path))


def number_vector(value: object, size: int) -> np.ndarray | None:
    """``value`` (a sequence, e.g. a multi-valued DS) as ``size`` finite floats, or None if it is not that."""
    try:
        vec = np.asarray([float(v) for v in value], dtype=float)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return vec if vec.shape == (size,) and np.isfinite(vec).all() else None


def _usable_orientation(iop: np.ndarray | None) -> np.ndarray | None:
    """``iop`` if its two cosines are unit length and orthogonal (within tolerance)."""
    if iop is None:
        return None
    row, col = iop[:3], iop[3:]
    unit = abs(np.linalg.norm(row) - 1) < 1e-2 and abs(np.linalg.norm(col) - 1) < 1e-2
    return iop if unit and abs(row @ col) < 1e-2 else None


def make_slices(header: Dataset, path: Path) -> list[Slice]:
    """The slices of one file: one per frame."""
    n_frames = int(header.get("NumberOfFrames") or 1)
    try:
        instance = int(header.get("InstanceNumber"))
    except (TypeError, ValueError):
        instance = None
    # a top-level position in a multi-frame object places frame 0 only: no per-frame geometry
    frame_positions = n_frames == 1 or "ImagePositionPatient" not in header
    slices = []
    for frame in range(n_frames):
        position = first_value(
            header, "ImagePositionPatient", _PLANE_GROUPS["ImagePositionPatient"], frame
        )
        position = position if frame_positions else None
        orientation = first_value(
            header, "ImageOrientationPatient", _PLANE_GROUPS["ImageOrientationPatient"], frame
        )
        slices.append(
            Slice(
                header=header,
                path=path,
                frame=frame,
                multiframe=n_frames > 1,
                position=number_vector(position, 3) if position is not None else None,
                orientation=_usable_orientation(
                    number_vector(orientation, 6) if orientation is not None else None
                ),
                instance=instance,
            )
        )
    return slices


# ----------------------------------------------------------------------------- splitting

Split = list[tuple[list[Slice], str | None]]


def _layout(s: Slice) -> tuple:
    spacing = s.value("PixelSpacing", _PLANE_GROUPS["PixelSpacing"]) or ()
    return (
        int(s.header.get("Rows", 0)),
        int(s.header.get("Columns", 0)),
        int(s.header.get("SamplesPerPixel", 1)),
        s.header.get("PhotometricInterpretation") == "MONOCHROME1",
        tuple(round(float(v), 4) for v in spacing),
    )


def _by_layout(slices: list[Slice]) -> Split:
    groups: dict[tuple, list[Slice]] = defaultdict(list)
    for s in slices:
        groups[_layout(s)].append(s)
    if len(groups) == 1:
        return [(slices, None)]
    return [
        (
            group,
            f"split by image layout: the series mixes {len(groups)} layouts (rows x columns, "
            f"samples, pixel spacing, MONOCHROME1 or not); this part is {key[0]}x{key[1]}, "
            f"{key[2]} sample(s), spacing {list(key[4])}{', MONOCHROME1' if key[3] else ''}",
        )
        for key, group in groups.items()
    ]


def _by_orientation(slices: list[Slice]) -> Split:
    clusters: list[tuple[np.ndarray | None, list[Slice]]] = []
    for s in slices:
        for rep, members in clusters:
            same = (rep is None and s.orientation is None) or (
                rep is not None
                and s.orientation is not None
                and np.abs(rep - s.orientation).max() <= ORIENTATION_TOL
            )
            if same:
                members.append(s)
                break
        else:
            clusters.append((s.orientation, [s]))
    if len(clusters) == 1:
        return [(slices, None)]

    def describe(rep: np.ndarray | None) -> str:
        return "no usable orientation" if rep is None else f"cosines {np.round(rep, 3).tolist()}"

    return [
        (
            members,
            f"split by ImageOrientationPatient: the series holds {len(clusters)} orientations "
            f"(tolerance {ORIENTATION_TOL:g}); this part has {describe(rep)}",
        )
        for rep, members in clusters
    ]


def _position_clusters(slices: list[Slice]) -> list[list[Slice]]:
    """Slices grouped by shared position, in order along the normal (positions required)."""
    normal = slices[0].normal
    ordered = sorted(slices, key=lambda s: (float(s.position @ normal), s.fallback_key()))
    clusters = [[ordered[0]]]
    for s in ordered[1:]:
        if np.linalg.norm(s.position - clusters[-1][0].position) < POSITION_TOL:
            clusters[-1].append(s)
        else:
            clusters.append([s])
    return clusters


def _has_positions(slices: list[Slice]) -> bool:
    return all(s.position is not None and s.orientation is not None for s in slices)


def _by_repeat(slices: list[Slice]) -> Split:
    if not _has_positions(slices):
        return [(slices, None)]
    clusters = _position_clusters(slices)
    if len(clusters) == len(slices):
        return [(slices, None)]
    shared = len(slices) - len(clusters)
    for keyword, groups_ in _REPEAT_KEYS:
        groups: dict[str, list[Slice]] = defaultdict(list)
        for s in slices:
            groups[str(s.value(keyword, groups_))].append(s)
        if len(groups) > 1 and all(len(_position_clusters(g)) == len(g) for g in groups.values()):
            return [
                (
                    group,
                    f"split by {keyword}: {shared} slice(s) shared a position with another; "
                    f"this part has {keyword} {value}",
                )
                for value, group in groups.items()
            ]
    repeats: dict[int, list[Slice]] = defaultdict(list)
    for cluster in clusters:
        for rank, s in enumerate(sorted(cluster, key=Slice.fallback_key)):
            repeats[rank].append(s)
    return [
        (
            group,
            f"split by repetition: {shared} slice(s) shared a position with another and no "
            f"attribute tells the repeats apart; this part holds repeat {rank + 1} of each "
            "position (by InstanceNumber)",
        )
        for rank, group in repeats.items()
    ]


_SPLITTERS: tuple[Callable[[list[Slice]], Split], ...] = (_by_layout, _by_orientation, _by_repeat)


def split_slices(slices: list[Slice]) -> list[tuple[list[Slice], list[str]]]:
    """Divide one series' slices into parts that can each form one volume.

    Splits, in turn, by image layout (size, samples, photometric interpretation, pixel
    spacing), by orientation (within :data:`ORIENTATION_TOL`) and by repeats at one position
    (by the first attribute of ``_REPEAT_KEYS`` that separates them, else by InstanceNumber
    rank). Each part comes with notes explaining the splits that made it.

    Returns:
        ``(slices, notes)`` per part, parts ordered by their smallest
        :meth:`Slice.fallback_key`.
    """
    parts: list[tuple[list[Slice], list[str]]] = [(slices, [])]
    for splitter in _SPLITTERS:
        parts = [
            (group, notes + [note] if note else notes)
            for part, notes in parts
            for group, note in splitter(part)
        ]
    return sorted(parts, key=lambda p: min(s.fallback_key() for s in p[0]))


# ----------------------------------------------------------------------------- ordering


def order_slices(slices: list[Slice]) -> tuple[list[Slice], np.ndarray, list[str]]:
    """Order one part's slices and build its RAS affine.

    With positions and orientations on every slice, slices are sorted by their position
    along the normal (row cosines x column cosines), so the volume's slice axis points the
    way SimpleITK/GDCM stacks it; the affine comes from the first slice, with the slice
    axis the mean position step ``(last - first) / (N - 1)``. Non-uniform gaps and steps
    that leave the normal (gantry tilt) are noted. Otherwise slices are ordered by
    InstanceNumber (multi-frame: frame number) and the affine is the first slice's
    :func:`~medden.io.dicom_series.dicom_affine`; a note says so.

    Args:
        slices: one part from :func:`split_slices` (one orientation, one slice per position).

    Returns:
        ``(ordered slices, 4x4 float64 RAS affine, notes)``.
    """
    notes: list[str] = []
    if not _has_positions(slices):
        ordered = sorted(slices, key=Slice.fallback_key)
        if len(slices) > 1:
            missing = sum(s.position is None or s.orientation is None for s in slices)
            by = "frame number" if slices[0].multiframe else "InstanceNumber"
            notes.append(
                f"{missing} of {len(slices)} slices lack ImagePositionPatient or a usable "
                f"ImageOrientationPatient; slices ordered by {by} and the slice axis of the "
                "affine is nominal"
            )
        return ordered, dicom_affine(ordered[0].header, frame=ordered[0].frame), notes
    normal = slices[0].normal
    ordered = sorted(slices, key=lambda s: (float(s.position @ normal), s.fallback_key()))
    affine = dicom_affine(ordered[0].header, frame=ordered[0].frame)
    if len(ordered) > 1:
        positions = np.stack([s.position for s in ordered])
        step = (positions[-1] - positions[0]) / (len(ordered) - 1)
        affine[:3, 2] = LPS_TO_RAS[:3, :3] @ step
        notes += _spacing_notes(positions @ normal, step, normal)
    return ordered, affine, notes


def _spacing_notes(along: np.ndarray, step: np.ndarray, normal: np.ndarray) -> list[str]:
    notes = []
    gaps = np.diff(along)
    mean = float(gaps.mean())
    if gaps.max() - gaps.min() > SPACING_RTOL * mean:
        notes.append(
            f"slice spacing is not uniform: gaps from {gaps.min():.4g} to {gaps.max():.4g} mm "
            f"(mean {mean:.4g} mm, {100 * (gaps.max() - gaps.min()) / mean:.3g}% spread); "
            "the affine uses the mean step"
        )
    in_plane = step - (step @ normal) * normal
    if np.linalg.norm(in_plane) > ORIENTATION_TOL * np.linalg.norm(step):
        angle = np.degrees(np.arctan2(np.linalg.norm(in_plane), step @ normal))
        notes.append(
            f"slices step {angle:.3g} deg off the slice normal (e.g. gantry tilt); the affine's "
            "slice axis follows the positions, so it is sheared"
        )
    return notes
