"""Shared pytest fixtures."""

import shutil
import subprocess

import pytest


@pytest.fixture
def dciodvfy():
    """Run dicom3tools' ``dciodvfy`` on a file and return its Error lines (skip if absent)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip(
            "dciodvfy not found; install it (apt-get install dicom3tools) to validate DICOM"
        )

    def run(path) -> list[str]:
        result = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
        lines = (result.stdout + result.stderr).splitlines()
        return [line for line in lines if line.startswith("Error")]

    return run


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A copy of the default bundle with every format exported (small calibration set), made once
    for the export command's tests and the backend tests; tests that change it work on a copy."""
    pytest.importorskip("onnxruntime")
    from medden.apps.export import export_bundle

    from helpers import copy_bundle

    bundle = copy_bundle("general_denoiser", tmp_path_factory.mktemp("export") / "general_denoiser")
    record = export_bundle(bundle, calibration_count=12, trust=True)
    return bundle, record
