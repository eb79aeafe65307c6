"""JSON sidecars next to image files: same stem, plain JSON, atomic, clear refusals."""

import json

import numpy as np
import pytest

from medden.io.sidecar import read_sidecar, sidecar_path, write_sidecar


@pytest.mark.parametrize("name, expected", [("scan_denoised.nii.gz", "scan_denoised.json"), ("a.b.nii", "a.b.json"),
                                            ("X.NII.GZ", "X.json"), ("tile.png", "tile.json")])
def test_sidecar_has_the_image_stem(tmp_path, name, expected):
    assert sidecar_path(tmp_path / "sub" / name) == tmp_path / "sub" / expected


def test_write_and_read_back_plain_json(tmp_path):
    image = tmp_path / "scan_denoised.nii.gz"
    path = write_sidecar(image, {"Sources": ("in/scan.nii.gz",), "NoiseSigmaBefore": np.float32(2.5),
                                 "Slices": np.int64(3), "Bad": float("nan"), "Nested": {"Inf": np.inf}})
    assert path == tmp_path / "scan_denoised.json"
    assert json.loads(path.read_text()) == read_sidecar(image) == {
        "Sources": ["in/scan.nii.gz"], "NoiseSigmaBefore": 2.5, "Slices": 3, "Bad": None, "Nested": {"Inf": None}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_denoised.json"]  # no temporary file left


def test_refusals_name_the_problem(tmp_path):
    image = tmp_path / "a.nii.gz"
    with pytest.raises(TypeError, match="sidecar field 'fields.Array' must be JSON data"):
        write_sidecar(image, {"Array": np.zeros(2)})
    with pytest.raises(TypeError, match="fields must be a mapping"):
        write_sidecar(image, [("a", 1)])
    assert not sidecar_path(image).exists()
    write_sidecar(image, {"A": 1})
    with pytest.raises(FileExistsError):
        write_sidecar(image, {"A": 2}, overwrite=False)
    assert read_sidecar(image) == {"A": 1}
    sidecar_path(image).write_text("[1, 2]")
    with pytest.raises(ValueError, match="a.json is not a JSON object"):
        read_sidecar(image)
