"""Atomic file writing shared by medden's writers (private)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def prepare_dir(path: str | os.PathLike, name: str = "out_dir") -> Path:
    """Create folder ``path`` (and parents) and return it; refuse a path that is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{name} must be a folder, but {str(path)!r} exists and is a file; "
            "choose another path or remove the file."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], object], *, overwrite: bool = False
) -> Path:
    """Write ``path`` via a temporary file in the same folder, then ``os.replace`` it.

    A reader never sees a half-written file, and an interrupted write leaves no partial file.

    Args:
        path: final file path; its folder must exist.
        write: called with the temporary path (which keeps ``path``'s suffixes, so writers
            that infer the format from the name still work); must write the whole file there.
        overwrite: replace an existing ``path``. If False, an existing file is an error.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{str(path)!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def separate_output_dir(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Create ``output_dir`` and return it, refusing the input folder itself (originals are never
    written next to).

    Raises:
        ValueError: ``output_dir`` is ``input_dir``.
    """
    out_dir = Path(output_dir)
    if out_dir.resolve() == Path(input_dir).resolve():
        raise ValueError("output_dir must differ from input_dir: medden never writes next to the originals.")
    return prepare_dir(out_dir, "output_dir")
