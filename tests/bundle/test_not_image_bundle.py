"""A bundle without an image inferer (k-space reconstruction) is refused where bundles load, with what it takes."""

import json

import nibabel as nib
import numpy as np
import pytest

from helpers import copy_bundle
from medden.apps.cli import main
from medden.bundle import NotAnImageBundleError, load_bundle
from medden.bundle.layout import INFERENCE_CONFIG


def test_load_bundle_refuses_the_kspace_bundle_saying_what_it_takes_and_how_to_run_it():
    with pytest.raises(NotAnImageBundleError, match=r"'n2n_kspace_mri' cannot denoise images.*no 'inferer'.*"
                                                    r"k-space in fastMRI \.h5.*monai\.bundle run --config_file "
                                                    r".*n2n_kspace_mri/configs/inference\.json"):
        load_bundle("n2n_kspace_mri", device="cpu")


def test_a_bundle_without_inference_input_falls_back_to_its_metadata_description(tmp_path):
    bundle = copy_bundle("n2n_kspace_mri", tmp_path / "kspace")
    config = json.loads((bundle / INFERENCE_CONFIG).read_text())
    del config["inference_input"]
    (bundle / INFERENCE_CONFIG).write_text(json.dumps(config))
    with pytest.raises(NotAnImageBundleError, match="It takes: A residual 2D U-Net"):
        load_bundle(bundle, trust=True)


def test_cli_denoise_of_a_nifti_with_the_kspace_bundle_fails_with_that_message(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.float32), np.eye(4)), tmp_path / "in" / "scan.nii.gz")
    code = main(["denoise", str(tmp_path / "in" / "scan.nii.gz"), str(tmp_path / "out"), "--bundle", "n2n_kspace_mri",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot denoise images" in err and "KeyError" not in err and "monai.bundle run" in err
