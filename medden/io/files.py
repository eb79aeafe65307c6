"""Files and folders shared by medden's writers: atomic writes, output folders and their one rule."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def prepare_dir(path: str | os.PathLike, name: str = "out_dir") -> Path:
    """Create folder ``path`` (and parents) and return it; refuse a path that is a file."""
    path = _not_a_file(path, name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _not_a_file(path: str | os.PathLike, name: str) -> Path:
    """``path`` as a Path, unless a file is already there (a folder of outputs cannot be made)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{name} must be a folder, but {str(path)!r} exists and is a file; "
            "choose another path or remove the file."
        )
    return path


def files_below(folder: str | os.PathLike, skip_hidden: bool = False) -> Iterator[Path]:
    """The files under ``folder``, in sorted order, without following folder links; with
    ``skip_hidden``, files and folders whose names start with ``.`` are left out."""
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not (skip_hidden and d.startswith(".")))
        yield from (Path(current) / name for name in sorted(names) if not (skip_hidden and name.startswith(".")))


def describe_error(err: BaseException, path: str | os.PathLike | None = None, name: str = "<file>",
                   limit: int = 200) -> str:
    """``Type: message`` on one line, the message cut to ``limit`` characters (``...`` marks a
    cut), with ``path`` (as given and resolved: it may name a patient's folder) replaced by ``name``."""
    message = " ".join(str(err).split())
    if path is not None:
        for spelling in sorted({str(path), str(Path(path).resolve())}, key=len, reverse=True):
            message = message.replace(spelling, name)
    message = message[:limit] + ("..." if len(message) > limit else "")
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


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


def check_output_dir(input_path: str | os.PathLike, output_dir: str | os.PathLike, *, create: bool = False) -> Path:
    """The one rule for a folder of outputs: it lies apart from its input. Returns ``output_dir``.

    The input folder is ``input_path`` itself, or a file's folder. ``output_dir`` may be
    neither that folder nor inside it (the originals are never touched, and derived files are
    never read back as input), and the input may not lie inside ``output_dir``. With
    ``create`` the folder is then made (:func:`prepare_dir`); else nothing is created.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        ValueError: ``output_dir`` is or lies inside the input folder, or ``input_path`` lies
            inside ``output_dir``.
        NotADirectoryError: ``output_dir`` is an existing file.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> check_output_dir(root, root / "out")
        Traceback (most recent call last):
        ...
        ValueError: output_dir ...
        >>> check_output_dir(root, root.parent / "elsewhere") == root.parent / "elsewhere"
        True
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    if not input_path.exists():
        raise FileNotFoundError(f"input {str(input_path)!r} does not exist.")
    _not_a_file(output_dir, "output_dir")
    src, dst = input_path.resolve(), output_dir.resolve()
    base = src if src.is_dir() else src.parent
    if dst == base or base in dst.parents:
        raise ValueError(
            f"output_dir {str(output_dir)!r} lies inside the input folder {str(base)!r} (output_dir must differ "
            "from input_dir and lie outside it); choose a folder outside the input folder, so the originals are "
            "never touched and derived files are not read back as input."
        )
    if dst in src.parents:
        raise ValueError(f"input {str(input_path)!r} lies inside output {str(output_dir)!r}; choose another output "
                         "folder, one that does not hold the input.")
    return prepare_dir(output_dir, "output_dir") if create else output_dir
