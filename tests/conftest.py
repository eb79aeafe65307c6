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
