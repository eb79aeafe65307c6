"""Train a bundle from any folder (``medden train``): its ``configs/train.json``, then optionally ``evaluate.json``.

The run is MONAI's own (:func:`monai.bundle.run`, in this process), with the outputs moved out of
the bundle: checkpoints and TensorBoard logs go to ``OUTPUT/train``, the trained weights to
``OUTPUT/model.pt`` and the evaluation to ``OUTPUT/eval/metrics.json``. A shipped bundle's
folder (and its ``models/model.pt``) is never written to unless ``output`` is that folder.

Example (a tiny run)::

    from medden.apps.train import train_bundle

    result = train_bundle("n2n_image", {"max_epochs": 1, "epoch_length": 2, "channels": [4, 8]},
                          output="./medden-train/n2n_image", evaluate=True)
    result.model, result.metrics
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medden.bundle.layout import config_file
from medden.bundle.resolve import resolve_bundle

__all__ = ["DEFAULT_OUTPUT", "TrainResult", "parse_settings", "train_bundle", "trained_weights_name"]

#: where ``medden train NAME`` writes unless told otherwise: ``./medden-train/NAME``
DEFAULT_OUTPUT = Path("medden-train")
TRAIN_CONFIG, EVALUATE_CONFIG = "train.json", "evaluate.json"


@dataclass(frozen=True)
class TrainResult:
    """Where a :func:`train_bundle` run put its files.

    Attributes:
        model: the trained weights (the best validated epoch's ``state_dict``).
        train_dir: checkpoints (``last.pt``, ``best.pt``) and ``tensorboard/``.
        metrics: the evaluation's ``metrics.json``, or None without ``evaluate``.
        values: the metrics read from that file (empty without ``evaluate``).
    """

    model: Path
    train_dir: Path
    metrics: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``["max_epochs=1", "channels=[4,8]", "noise=poisson"]`` as config ids and values.

    A value is read as JSON (``1``, ``[4, 8]``, ``null``, ``true``), else as a Python literal
    (``None``, ``True``), else kept as text.

    Raises:
        ValueError: a pair without ``=`` or with an empty id.
    """
    settings = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError("--set takes KEY=VALUE (a config id, e.g. max_epochs=1 or "
                             f"train#dataloader#batch_size=2); got {pair!r}.")
        settings[key.strip()] = _value(text)
    return settings


def _value(text: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    return text


def trained_weights_name(configs: Sequence[str]) -> str:
    """The file name ``medden train`` gives the weights a run of ``configs`` makes: ``model.pt``
    for ``train.json`` (with or without overlays), ``flow.pt`` for a stage such as ``train_flow.json``."""
    first = Path(configs[0]).name
    return "model.pt" if first == TRAIN_CONFIG else first.removeprefix("train_").removesuffix(".json") + ".pt"


def train_bundle(bundle: str | os.PathLike, settings: Mapping[str, Any] | None = None,
                 output: str | os.PathLike | None = None, evaluate: bool = False,
                 trust: bool = False, configs: Sequence[str] = (TRAIN_CONFIG,)) -> TrainResult:
    """Run a bundle's ``configs/train.json`` (and then ``evaluate.json``) with its outputs in ``output``.

    Args:
        bundle: a shipped bundle's name, or a bundle folder as a path (with ``trust``).
        configs: the config files of the run, in the bundle's ``configs/`` folder, merged in
            order as ``monai.bundle run`` merges a list: ``("train.json",)``, a stage of its
            own such as ``("train_flow.json",)`` (weights in ``OUTPUT/flow.pt``, see
            :func:`trained_weights_name`), or ``train.json`` with overlays such as
            ``("train.json", "train_supervised.json")``.
        settings: config ids and values for both configs (``max_epochs``, ``epoch_length``,
            ``val_interval``, ``batch_size``, ``dataset_dir``, ``channels``, ...); an id the
            evaluation config lacks is set in training only.
        output: folder of the results; default ``./medden-train/<bundle name>``.
        evaluate: score the trained weights with the bundle's ``configs/evaluate.json``.
        trust: run a bundle folder medden does not ship (its configs run code).

    Raises:
        FileNotFoundError: no such bundle, or ``evaluate`` for a bundle without ``evaluate.json``.
        UntrustedBundleError: a folder medden does not ship, without ``trust``.
        RuntimeError: the run failed; MONAI's message, with the cause it wraps.
    """
    root = resolve_bundle(bundle, trust)
    output = Path(output if output is not None else DEFAULT_OUTPUT / root.name).absolute()
    configs = _check_configs(root, configs)
    if evaluate and not (root / config_file(EVALUATE_CONFIG)).is_file():
        raise FileNotFoundError(f"bundle {root.name!r} has no {config_file(EVALUATE_CONFIG)}; train without evaluate.")
    if evaluate and configs[0] != TRAIN_CONFIG:
        raise ValueError(f"--evaluate scores the weights train.json makes; {configs[0]} makes {trained_weights_name(configs)}"
                         " (another stage): train without --evaluate.")
    settings = dict(settings or {})
    train_dir, model = output / "train", output / trained_weights_name(configs)
    _run(root, configs, {**settings, "output_dir": str(train_dir), "save_model_to": str(model)}, only_known=False)
    if not evaluate:
        return TrainResult(model=model, train_dir=train_dir)
    _run(root, [EVALUATE_CONFIG], {**settings, "output_dir": str(output / "eval"), "model_path": str(model)},
         only_known=True)
    metrics = output / "eval" / "metrics.json"
    return TrainResult(model=model, train_dir=train_dir, metrics=metrics, values=json.loads(metrics.read_text()))


def _check_configs(root: Path, configs: Sequence[str]) -> list[str]:
    """``configs`` as bare file names of existing files in the bundle's ``configs/`` folder."""
    names = [str(name) for name in configs]
    if not names:
        raise ValueError("no config to run: give at least one, e.g. train.json.")
    for name in names:
        if Path(name).name != name or not (root / config_file(name)).is_file():
            present = sorted(p.name for p in (root / config_file(TRAIN_CONFIG)).parent.glob("train*.json"))
            raise FileNotFoundError(f"bundle {root.name!r} has no config {name!r} (a file name in its configs/ "
                                    f"folder); its training configs: {', '.join(present)}.")
    return names


def _run(root: Path, names: Sequence[str], settings: dict[str, Any], only_known: bool) -> None:
    """``monai.bundle.run`` of the bundle's configs ``names`` (merged in order) with ``settings``
    (only ids they have, if ``only_known``)."""
    from monai.bundle import ConfigParser, run

    paths = [root / config_file(name) for name in names]
    if only_known:
        config = ConfigParser.load_config_files([str(p) for p in paths])
        settings = {key: value for key, value in settings.items() if key.split("#")[0] in config}
    path = paths[-1]
    try:
        run(config_file=[str(p) for p in paths] if len(paths) > 1 else str(paths[0]), **settings)
    except RuntimeError as err:  # MONAI wraps the real error in "Failed to evaluate/instantiate ..."
        cause = err.__cause__
        while isinstance(cause, RuntimeError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if cause is None:
            raise
        raise RuntimeError(f"{path.name} of bundle {root.name!r} failed: {type(cause).__name__}: {cause}") from err


def train_command(args) -> int:
    """``medden train``: :func:`train_bundle` from parsed arguments; prints where the model went. Returns 0."""
    result = train_bundle(args.bundle, parse_settings(args.set or []), output=args.output, evaluate=args.evaluate,
                          trust=args.trust_bundle, configs=args.config or (TRAIN_CONFIG,))
    print(f"model: {result.model}")
    print(f"checkpoints and TensorBoard logs: {result.train_dir} "
          f"(tensorboard --logdir {result.train_dir / 'tensorboard'})")
    if result.metrics is not None:
        scores = ", ".join(f"{key} {value:.4g}" if isinstance(value, (int, float)) else f"{key} {value}"
                           for key, value in result.values.items())
        print(f"evaluation: {scores}; {result.metrics}")
    if result.model.name != "model.pt":  # the weights of another stage, e.g. the flow prior's flow
        print(f"these are the weights of {args.config[0]}: set them where the bundle's train.json reads them "
              f"(e.g. --set flow_path={result.model} for the flow prior)")
        return 0
    inference = resolve_bundle(args.bundle, args.trust_bundle) / config_file("inference.json")
    print(f"denoise with it: python -m monai.bundle run --config_file {inference} --model_path {result.model} "
          "--input_dir IN --output_dir OUT (plus the --set values that changed the network), or copy the bundle "
          "folder, put the model in its models/model.pt and run medden denoise IN OUT --bundle ./COPY --trust-bundle")
    return 0
