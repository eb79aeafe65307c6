"""``bundle_root`` of a bundle config, found from the config file being run, not from the current folder.

A bundle's configs write ``"bundle_root": "$medden.bundle.root.running_bundle_root('NAME')"``
so that ``python -m monai.bundle run --config_file /anywhere/NAME/configs/train.json`` works
from any folder and a copied bundle folder uses its own files:

1. under a MONAI ``ConfigWorkflow`` (``monai.bundle run``, ``run_workflow``,
   ``create_workflow``), the bundle folder is the parent of the ``configs/`` folder that holds
   the workflow's config file (MONAI keeps it as ``config_root_path`` but does not put it
   into the parser, so it is read from the workflow running the expression);
2. under a ``monai.bundle`` script that parses with a bare ``ConfigParser``
   (``verify_net_in_out``, ``ckpt_export``, ``onnx_export``, ...), the folder of the
   ``config_file`` it was given, read the same way from the calling frames;
3. otherwise, the shipped bundle ``NAME``.

Reading the caller's frames is the one way to learn which file is being run: MONAI passes no
file name to the expressions it evaluates. A ``ConfigParser`` used directly, outside these,
gets the shipped bundle: set ``bundle_root`` there (as :func:`medden.bundle.bundle_config` does).

An explicit ``bundle_root`` still wins: ``--bundle_root DIR`` on the command line, or
:func:`medden.bundle.bundle_config` / :func:`medden.bundle.load_bundle`, which set it.

Example:
    >>> running_bundle_root("n2n_image").endswith("n2n_image")
    True
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from medden.bundle.layout import CONFIGS
from medden.bundle.resolve import shipped_bundles, shipped_bundles_dir

__all__ = ["running_bundle_root", "workflow_bundle_folder"]


def workflow_bundle_folder() -> Path | None:
    """The bundle folder of the innermost MONAI workflow or bundle script on the call stack, absolute; None if none.

    A ``ConfigWorkflow`` gives its ``config_root_path`` (the folder of its first config file);
    a ``monai.bundle`` script its ``config_file`` (or ``config_file_``) argument, when that is
    an existing file. The folder is that folder's parent when it is called ``configs`` (as
    ``ConfigWorkflow.run`` takes it when it adds the bundle folder to ``sys.path``).
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, ConfigWorkflow):
                return _bundle_folder(Path(owner.config_root_path))
            if frame.f_globals.get("__name__", "").startswith("monai.bundle"):
                for key in ("config_file_", "config_file"):
                    path = _first_file(frame.f_locals.get(key))
                    if path is not None:
                        return _bundle_folder(path.parent)
            frame = frame.f_back
    finally:
        del frame  # a frame referencing itself would keep every local alive
    return None


def _first_file(value) -> Path | None:
    """The first existing file of a ``config_file`` argument (a path or a list of paths), or None."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_file():
            return Path(item)
    return None


def _bundle_folder(config_folder: Path) -> Path:
    return (config_folder.parent if config_folder.name == CONFIGS.name else config_folder).resolve()


def running_bundle_root(name: str) -> str:
    """The folder of the bundle whose config is being evaluated, as a string for ``@bundle_root + '/...'``.

    Args:
        name: the bundle's own name, the fallback when no ``ConfigWorkflow`` runs the config.

    Raises:
        FileNotFoundError: no workflow runs the config and ``name`` is not a shipped bundle
            (the message says to set ``bundle_root``).
    """
    folder = workflow_bundle_folder()
    if folder is not None:
        return str(folder)
    if name in shipped_bundles():
        return str(shipped_bundles_dir() / name)
    raise FileNotFoundError(
        f"cannot tell where bundle {name!r} is: its config is not run by a MONAI ConfigWorkflow (monai.bundle run) "
        f"and {name!r} is not a shipped bundle. Set bundle_root to the bundle folder, e.g. "
        "parser['bundle_root'] = '/path/to/bundle' or --bundle_root /path/to/bundle.")
