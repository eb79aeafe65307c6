"""Small shared helpers for the tests (not fixtures: plain functions)."""

import numpy as np
import torch


def as_numpy(x):
    """Return ``x`` (numpy or torch, MetaTensor included) as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_backend(x: np.ndarray, backend: str):
    """``x`` as numpy (``"numpy"``) or as a plain torch tensor (``"torch"``)."""
    return torch.as_tensor(x) if backend == "torch" else x


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
BUNDLE_FILES = ("configs/metadata.json", "configs/train.json", "configs/evaluate.json", "configs/inference.json",
                "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md", "LICENSE", "models/model.pt")


def bundle_variant(folder, bundle, **changes):
    """A bundle in ``folder/variant_bundle``: ``bundle``'s inference.json with ``changes``, using its weights in place."""
    import json

    from medden.bundle.layout import INFERENCE_CONFIG, WEIGHTS

    config = json.loads((bundle / INFERENCE_CONFIG).read_text())
    config.update(model_path=str(bundle / WEIGHTS), **changes)
    variant = folder / "variant_bundle"
    (variant / INFERENCE_CONFIG).parent.mkdir(parents=True)
    (variant / INFERENCE_CONFIG).write_text(json.dumps(config))
    return variant


def copy_bundle(name, dest):
    """A copy of the shipped bundle ``name`` at ``dest``, without its runs and exports."""
    import shutil

    from medden.bundle.layout import EXPORT_RECORD, EXPORTED_FILES

    exports = [path.name for path in (EXPORT_RECORD, *EXPORTED_FILES.values())]
    shutil.copytree(REPO / "bundles" / name, dest, ignore=shutil.ignore_patterns("runs", *exports))
    return dest


def noisy_ct_slice(seed=0, size=(96, 128)):
    """``(noisy, clean)``: a head-CT window with Gaussian noise, noisy in "modality units" as a scanner gives."""
    from medden.data.modalities import sample_plane

    clean = sample_plane("693_UNCR.dcm")[:, 200:200 + size[0], 150:150 + size[1]]
    noisy = clean + np.random.default_rng(seed).normal(0, 0.08, clean.shape)
    return noisy.astype(np.float32) * 1000.0 - 200.0, clean


def run_bundle(*args, timeout=600, threads="2"):
    """``python -m monai.bundle ARGS`` from an empty folder outside the repository (every bundle
    must run from anywhere: its ``bundle_root`` comes from the config file's own location, and
    nothing may be read from or written to the current folder); fails the test on a non-zero exit.

    Runs in this process, as the entry point would (``fire`` parses the same arguments into the
    same ``monai.bundle`` functions), which spares every call the seconds a new interpreter
    spends importing torch and MONAI. The console output is captured and returned as
    ``result.stdout`` / ``result.stderr`` (console log handlers made by earlier runs are
    pointed at it for the call); the root logger's handlers (which a bundle's
    ``logging.conf`` replaces) are restored afterwards. The command line itself still runs in
    a new interpreter where a test checks its error output (a corrupt model file, missing
    perceptual weights) and under torchrun.
    """
    import contextlib
    import io
    import logging
    import os
    import tempfile
    import types
    from pathlib import Path

    import fire
    import torch
    from monai.bundle import scripts

    del timeout, threads  # subprocess-only settings; an in-process run uses the test's own threads
    entry_points = {name: getattr(scripts, name) for name in ("run", "run_workflow", "verify_metadata",
                                                            "verify_net_in_out", "ckpt_export", "onnx_export")}
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level, cwd = root.handlers[:], root.level, os.getcwd()
    threads_before = torch.get_num_threads()
    # loggers an earlier in-process run set up (e.g. MONAI's StatsHandler logger, which gets its own
    # console handler when first made) still write to the console of that time: point them here too
    consoles = [h for logger in [root, *logging.Logger.manager.loggerDict.values()]
                for h in getattr(logger, "handlers", []) if type(h) is logging.StreamHandler]
    streams = [h.setStream(out) for h in consoles]
    try:
        with tempfile.TemporaryDirectory(prefix="medden-elsewhere-") as elsewhere:
            os.chdir(elsewhere)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                fire.Fire(entry_points, command=[str(a) for a in args], name="monai.bundle")
            os.chdir(cwd)
            left = sorted(p.name for p in Path(elsewhere).iterdir())
        assert not left, f"the bundle run wrote {left} into the current folder"
    except SystemExit as exit_:  # fire exits on a usage error
        raise AssertionError((out.getvalue()[-2000:], err.getvalue()[-4000:])) from exit_
    finally:
        for handler, stream in zip(consoles, streams):
            handler.setStream(stream)
        os.chdir(cwd)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        torch.set_num_threads(threads_before)
    return types.SimpleNamespace(stdout=out.getvalue(), stderr=err.getvalue(), returncode=0)


def ct_series_datasets(n: int) -> list:
    """n pydicom datasets of one new CT series made from pydicom's CT_small: new UIDs,
    positions 2 mm apart along z, instance numbers 1..n."""
    import copy

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid, datasets = generate_uid(), []
    for k in range(n):
        ds = copy.deepcopy(source)  # Dataset.copy() is shallow: the copies would share one file_meta
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [float(v) + (2.0 * k if i == 2 else 0.0)
                                   for i, v in enumerate(source.ImagePositionPatient)]
        ds.InstanceNumber = k + 1
        datasets.append(ds)
    return datasets


def assert_standard_bundle(bundle, max_model_bytes=8 * 2**20):
    """A MONAI bundle's standard file set is present and its model is small enough to ship."""
    for name in BUNDLE_FILES:
        assert (bundle / name).is_file(), name
    assert (bundle / "models/model.pt").stat().st_size < max_model_bytes


def check_nifti_folder_inference(configs, tmp_path, *overrides):
    """A bundle's inference.json denoises a folder with one noisy 3-slice NIfTI ramp, keeps its affine and
    shape, and at least 40 % of the noise goes (mean absolute error)."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(100, 900, 80, dtype=np.float32), (72, 1))[..., None].repeat(3, -1)
    noisy = clean + 40 * rng.standard_normal(clean.shape).astype(np.float32)
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(noisy, affine), tmp_path / "in" / "scan.nii.gz")
    run_bundle("run", "--config_file", str(configs / "inference.json"), "--input_dir", str(tmp_path / "in"),
               "--output_dir", str(tmp_path / "out"), *overrides)
    out = nib.load(tmp_path / "out" / "scan_denoised.nii.gz")
    np.testing.assert_allclose(out.affine, affine)
    denoised = np.asarray(out.dataobj)
    assert denoised.shape == noisy.shape
    assert np.abs(denoised - clean).mean() < 0.6 * np.abs(noisy - clean).mean()


def run_bundle_training_under_torchrun(bundle, out_dir, *overrides):
    """train.json + multi_gpu_train.json of ``bundle`` under torchrun, two CPU (gloo) processes."""
    import os
    import subprocess
    import sys

    configs = bundle / "configs"
    config_list = f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "monai.bundle",
         "run", "--config_file", config_list, *overrides, "--output_dir", str(out_dir), "--save_model_to",
         str(out_dir / "model.pt"), "--meta_file", str(configs / "metadata.json"),
         "--logging_file", str(configs / "logging.conf")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out_dir / "model.pt").is_file()


def check_bundle_tooling(bundle, tmp_path, channels=1, trace=False, out_channels=None):
    """MONAI's verify_metadata, verify_net_in_out and ckpt_export (TorchScript; traced rather
    than scripted with ``trace``) accept ``bundle`` (a network of ``channels`` in and
    ``out_channels``, default the same, out). They run in this process, as the
    ``python -m monai.bundle`` entry points would call them (the entry point's argument
    parsing is exercised by every ``run_bundle`` test)."""
    import torch
    from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

    meta, inference = str(bundle / "configs" / "metadata.json"), str(bundle / "configs" / "inference.json")
    verify_metadata(meta_file=meta, filepath=str(REPO / "bundles" / "meta_schema.json"))
    verify_net_in_out(net_id="network_def", meta_file=meta, config_file=inference, n=4, bundle_root=str(bundle))
    tracing = {"use_trace": True, "input_shape": [1, channels, 64, 64]} if trace else {}
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(bundle / "models/model.pt"),
                meta_file=meta, config_file=inference, bundle_root=str(bundle), **tracing)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    x = torch.rand(1, channels, 64, 64)
    assert scripted(x).shape == (1, channels if out_channels is None else out_channels, 64, 64)


class Halve(torch.nn.Module):
    """f(x) = x / 2: a network whose effect in the input's units is known exactly."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x / 2 + self.dummy


def write_ct_series(folder, n: int = 3) -> str:
    """A small CT series made from CT_small: n slices, new UIDs, positions 2 mm apart, no .dcm suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    datasets = ct_series_datasets(n)
    for k, ds in enumerate(datasets):
        ds.save_as(folder / f"img{n - k}")
    return datasets[0].SeriesInstanceUID


def file_digests(folder) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, by relative path (to prove inputs are untouched)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def config_items(config, predicate):
    """Every dict anywhere in a parsed bundle config (nested dicts and lists) whose
    ``_target_`` string satisfies ``predicate``."""
    if isinstance(config, dict):
        if predicate(str(config.get("_target_", ""))):
            yield config
        values = config.values()
    elif isinstance(config, list):
        values = config
    else:
        return
    for value in values:
        yield from config_items(value, predicate)
