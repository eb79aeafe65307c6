"""What a ``medden denoise`` run has done, kept so that a rerun redoes exactly what changed.

The manifest (``OUTPUT/medden_manifest.json``; one per process under torchrun) holds one row
per finished series or NIfTI file, keyed by the series UID (``nifti:<path>`` for files):

* ``model``: the identity of the model that made it (:func:`model_identity`: the bundle's
  name, its weights' and config's SHA-256, the backend, medden's version), as a digest;
* ``sources``: how many source instances went in and a SHA-256 over what identifies each
  (:func:`source_fingerprint`: SOP Instance UID and file size for DICOM; path, size and
  modification time for NIfTI);
* ``outputs``: every file written for it, relative to OUTPUT, with its size.

A series is skipped on a rerun only when all three still hold: the same model, the same
sources, and every output file present at its recorded size. Otherwise it is done again and
the files of its earlier result that the new one does not replace are deleted (only files
the manifest lists are ever deleted). A manifest written by another model is refused as a
whole unless the caller overwrites (:class:`ModelMismatchError`): one OUTPUT holds the
results of one model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medden.bundle import Bundle

__all__ = ["MANIFEST", "ModelMismatchError", "RunManifest", "has_results", "model_identity", "source_fingerprint"]

MANIFEST = "medden_manifest.json"
#: the manifest layout this module reads and writes; manifests of other layouts are not trusted
FORMAT = 2


class ModelMismatchError(ValueError):
    """OUTPUT holds results of another model than the one this run uses."""


def model_identity(bundle: Bundle) -> dict[str, Any]:
    """What identifies the model that makes the pixels: ``{"bundle", "backend", "weights_sha256",
    "medden", "digest"}``; ``digest`` is a SHA-256 over the bundle's name, its ``parameters``
    (weights and config SHA-256, backend, pixel-changing settings) and medden's version."""
    from medden import __version__

    described = {"bundle": bundle.name, "parameters": bundle.parameters, "medden": __version__}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()
    return {"bundle": bundle.name, "backend": bundle.backend,
            "weights_sha256": bundle.parameters.get("weights_sha256"), "medden": __version__, "digest": digest}


def source_fingerprint(instances: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    """``{"instances": count, "sha256": digest}`` of the tuples that identify a series' sources
    (e.g. ``(SOPInstanceUID, size in bytes)`` per file), in any order."""
    items = sorted(json.dumps(list(item), default=str) for item in instances)
    return {"instances": len(items), "sha256": hashlib.sha256("\n".join(items).encode()).hexdigest()}


def has_results(output_dir: str | os.PathLike) -> bool:
    """Whether ``output_dir`` holds a manifest with at least one finished series or file."""
    return any(_read(path).get("series") for path in Path(output_dir).glob(MANIFEST.replace(".json", "*.json")))


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunManifest:
    """The manifest of one process of a run into ``output_dir``, and what earlier runs finished.

    Args:
        output_dir: the run's OUTPUT folder.
        model: :func:`model_identity` of this run's bundle.
        resume: skip what earlier runs finished (when still valid); else redo everything.
        overwrite: allow replacing the results of another model.
        rank, world: this process and how many there are (one manifest file each).

    Raises:
        ModelMismatchError: an earlier run finished series with another model, and not ``overwrite``.
    """

    def __init__(self, output_dir: Path, model: Mapping[str, Any], resume: bool = True, overwrite: bool = False,
                 rank: int = 0, world: int = 1) -> None:
        self.output_dir = Path(output_dir)
        self.model = dict(model)
        self.resume = resume
        self.path = self.output_dir / (MANIFEST if world == 1 else MANIFEST.replace(".json", f".rank{rank}.json"))
        self.earlier: dict[str, dict] = {}
        for path in sorted(self.output_dir.glob(MANIFEST.replace(".json", "*.json"))):
            data = _read(path)
            if data.get("format") == FORMAT and isinstance(data.get("series"), dict):
                self.earlier.update(data["series"])
        others = {row.get("model") for row in self.earlier.values()} - {self.model["digest"]}
        if others and not overwrite:
            names = sorted({str(row.get("bundle")) for row in self.earlier.values()
                            if row.get("model") != self.model["digest"]})
            raise ModelMismatchError(
                f"output folder {str(self.output_dir)!r} already holds results of another model ({', '.join(names)}; "
                f"this run uses {self.model['bundle']} with weights {str(self.model['weights_sha256'])[:12]}...). "
                "One output folder holds one model's results: choose another output folder, or pass --overwrite "
                "(overwrite=True) to replace them.")
        own = _read(self.path)
        self.rows: dict[str, dict] = dict(own["series"]) if own.get("format") == FORMAT else {}
        self._owners: dict[str, str] | None = None

    def finished(self, key: str, sources: Mapping[str, Any]) -> dict | None:
        """The earlier row of ``key`` if it may be skipped: done by this model from these sources,
        every output file present at its size; else None."""
        row = self.earlier.get(key)
        if not self.resume or row is None or row.get("model") != self.model["digest"]:
            return None
        if row.get("sources") != dict(sources) or not self._intact(row.get("outputs") or {}):
            return None
        return row

    def why_redone(self, key: str, sources: Mapping[str, Any]) -> str | None:
        """Why an earlier result of ``key`` is done again (None when there is none)."""
        row = self.earlier.get(key)
        if row is None or not self.resume:
            return None
        if row.get("model") != self.model["digest"]:
            return "an earlier result was made by another model"
        if row.get("sources") != dict(sources):
            return "its source files changed since the earlier run"
        return "files of the earlier result are missing or changed"

    def record(self, key: str, row: Mapping[str, Any], sources: Mapping[str, Any], outputs: Iterable[Path]) -> None:
        """Record ``key`` as done (written atomically), then delete the files of its earlier
        result that this one did not replace."""
        from medden.io.files import atomic_write

        written = {self._relative(p): Path(p).stat().st_size for p in outputs}
        earlier = (self.earlier.get(key) or {}).get("outputs") or {}
        self.rows[key] = {**row, "model": self.model["digest"], "bundle": self.model["bundle"],
                          "sources": dict(sources), "outputs": written}
        self.earlier[key] = self.rows[key]
        if self._owners is not None:
            self._own(key, written)
        text = json.dumps({"format": FORMAT, "series": self.rows}, indent=2, default=str) + "\n"
        atomic_write(self.path, lambda tmp: tmp.write_text(text), overwrite=True)
        self._remove(name for name in earlier if name not in written)

    def owner(self, folder: str | os.PathLike) -> str | None:
        """The key whose recorded outputs (this run's or an earlier one's) lie directly in ``folder``, or None."""
        if self._owners is None:  # folder -> key, built once and kept up to date by record()
            self._owners = {}
            for key, row in self.earlier.items():
                self._own(key, row.get("outputs") or {})
        return self._owners.get(self._relative(Path(folder)))

    def _own(self, key: str, outputs: Iterable[str]) -> None:
        for name in outputs:
            self._owners.setdefault(Path(str(name)).parent.as_posix(), key)

    def _relative(self, path: Path) -> str:
        return Path(os.path.relpath(Path(path), self.output_dir)).as_posix()

    def _inside(self, name: str) -> Path | None:
        """``output_dir / name`` if it stays inside ``output_dir`` (a manifest is data, not trusted)."""
        path = (self.output_dir / name).resolve()
        return path if path.is_relative_to(self.output_dir.resolve()) and path != self.output_dir.resolve() else None

    def _intact(self, outputs: Mapping[str, int]) -> bool:
        for name, size in outputs.items():
            path = self._inside(name)
            if path is None or not path.is_file() or path.stat().st_size != size:
                return False
        return bool(outputs)

    def _remove(self, names: Iterable[str]) -> None:
        folders = set()
        for name in names:
            path = self._inside(name)
            if path is not None and path.is_file():
                path.unlink()
                folders.add(path.parent)
        for folder in folders:  # a derived series folder left empty by a result of another model
            if folder != self.output_dir.resolve() and not any(folder.iterdir()):
                folder.rmdir()
