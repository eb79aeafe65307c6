"""`medden serve` without a browser (FastAPI's TestClient): every accepted upload type end to end,
slice images, downloads, refusals with their messages, the temporary folder's lifetime, the job
store and the command line."""

import asyncio
import gzip
import io
import json
import logging
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

pytest.importorskip("fastapi", reason='the web viewer needs the serve extra: pip install "medden[serve]"')
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (the test extra)")

from fastapi.testclient import TestClient

from medden.apps.cli import build_parser, main
from medden.bundle import load_bundle, shipped_bundles
from medden.bundle.exports import BACKENDS
from medden.bundle.loading import NotAnImageBundleError
from medden.inference import denoise_image
from medden.io import plan_dicom_series
from medden.apps.serve import create_app
from medden.apps.serve.errors import UploadError
from medden.apps.serve.upload import receive_upload

from helpers import ct_series_datasets

LIMIT = 2 * 2**20  # the module server's upload limit
LOCAL = "http://127.0.0.1"  # the server answers its bound address's names only (TestClient's default is testserver)
VIEWS = ("noisy", "denoised", "difference")


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def client(temp_root):
    with TestClient(create_app(temp_root=temp_root, device="cpu", max_upload_bytes=LIMIT), base_url=LOCAL) as c:
        yield c


@pytest.fixture(autouse=True)
def uploads_are_deleted(request):
    """After every test, the server's upload folder is empty again (successful and refused requests)."""
    yield
    if "temp_root" in request.fixturenames:
        root = request.getfixturevalue("temp_root")
        assert sorted(p.name for p in root.iterdir()) == []


@pytest.fixture(scope="module")
def general():
    """The default bundle, which the server runs unless told otherwise."""
    from medden.bundle.resolve import DEFAULT_BUNDLE

    return load_bundle(DEFAULT_BUNDLE, "cpu")


def _post(client, name, content, bundle=None):
    data = {} if bundle is None else {"bundle": bundle}
    return client.post("/api/denoise", files={"file": (name, content)}, data=data)


def _ok(answer) -> dict:
    assert answer.status_code == 200, answer.text
    return answer.json()


def _slice(client, summary, k, view) -> np.ndarray:
    answer = client.get(summary["slice_url"].format(k=k, view=view))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(answer.content)) as png:
        return np.asarray(png)


def _download(client, summary, fmt) -> bytes:
    answer = client.get(summary["downloads"][fmt])
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    return answer.content


def _nifti(content: bytes, tmp_path: Path) -> nib.Nifti1Image:
    path = tmp_path / "download.nii.gz"
    path.write_bytes(content)
    return nib.load(path)


def _dicoms(content: bytes) -> list[pydicom.Dataset]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in sorted(archive.namelist())]


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _phantom(shape=(48, 40), seed=0, sigma=80.0):
    """A bright disc on a grey background (clean) and a noisy copy, float32."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 200.0 + 600.0 * (((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) < (min(shape) / 3) ** 2)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


# ----------------------------------------------------------------------------- page and listing


def test_page_works_offline_and_lists_the_bundles(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="file"', 'id="bundle"', 'id="submit"', 'id="error"', 'id="noisy"', 'id="denoised"',
                    'id="difference"', 'id="slice"', 'type="range"', 'id="download-dicom"', 'id="download-nifti"'):
        assert element in page.text
    assets = [client.get(path) for path in ("/static/app.js", "/static/style.css")]
    assert [a.status_code for a in assets] == [200, 200]
    for text in [page.text] + [a.text for a in assets]:  # nothing is fetched from elsewhere
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert client.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN
    assert client.get("/api/health").json() == {"status": "ok"}
    info = client.get("/api/bundles").json()
    assert info["default"] == "general_denoiser_v3" and info["max_upload_bytes"] == LIMIT
    assert "general_denoiser" in info["bundles"] and "n2n_kspace_mri" not in info["bundles"]
    assert "PNG" in info["accepted"] and "NIfTI" in info["accepted"]


def test_bundles_left_out_are_those_that_cannot_denoise_an_image(client):
    offered = set(client.get("/api/bundles").json()["bundles"])
    left_out = [name for name in shipped_bundles() if name not in offered]
    assert left_out == ["n2n_kspace_mri"]
    for name in left_out:
        with pytest.raises(NotAnImageBundleError, match="has no 'inferer'"):
            load_bundle(name, "cpu")


@pytest.mark.parametrize("name", [n for n in shipped_bundles() if n != "n2n_kspace_mri"])
def test_every_offered_bundle_denoises_an_rgb_png(client, name):
    _, noisy = _phantom((24, 20), seed=1, sigma=20.0)
    rgb = np.clip(np.stack([noisy, 0.8 * noisy, 0.5 * noisy], axis=-1) / 4, 0, 255).astype(np.uint8)
    summary = _ok(_post(client, "tile.png", _png(rgb), bundle=name))
    assert summary["bundle"] == name and summary["shape"] == [3, 20, 24, 1] and summary["slices"] == 1
    assert summary["backend"] in BACKENDS
    assert set(summary["downloads"]) == {"nifti", "png"}
    with Image.open(io.BytesIO(_download(client, summary, "png"))) as png:
        assert png.mode == "RGB" and png.size == (20, 24)
        out = np.asarray(png)
    # a plausible image of the same scene (a Bernoulli bundle keeps every observed pixel, so "changed" is no test)
    assert np.corrcoef(out.ravel().astype(float), rgb.ravel().astype(float))[0, 1] > 0.9
    assert abs(out.astype(float).mean() - rgb.mean()) < 10
    assert _slice(client, summary, 0, "denoised").shape == (24, 20, 3)


# ----------------------------------------------------------------------------- DICOM


def test_dicom_upload_gives_views_and_a_derived_series(client, general, tmp_path):
    source_path = Path(get_testdata_file("CT_small.dcm"))
    source = pydicom.dcmread(source_path)
    answer = _post(client, "CT_small.dcm", source_path.read_bytes())
    summary = _ok(answer)
    assert str(source.PatientName) not in answer.text and str(source.PatientID) not in answer.text
    assert summary["kind"] == "dicom" and summary["shape"] == [1, 128, 128, 1] and summary["slices"] == 1
    assert set(summary["downloads"]) == {"dicom", "nifti"}

    views = {view: _slice(client, summary, 0, view) for view in VIEWS}
    assert all(v.shape == (128, 128) and v.dtype == np.uint8 for v in views.values())
    assert views["noisy"].std() > 20 and not np.array_equal(views["noisy"], views["denoised"])
    assert 100 <= np.median(views["difference"]) <= 155  # mostly mid-grey: little removed
    assert views["difference"].std() > 1  # but not nothing
    assert client.get(summary["slice_url"].format(k=1, view="noisy")).status_code == 404

    # the same numbers as `medden denoise`: the bundle's intensity handling on the same volume
    dicom_dir = tmp_path / "in"
    dicom_dir.mkdir()
    shutil.copy(source_path, dicom_dir / "ct.dcm")
    plan = plan_dicom_series(dicom_dir)[0][0]
    volume = source.pixel_array.T[None, :, :, None] * float(source.RescaleSlope) + float(source.RescaleIntercept)
    expected = denoise_image(volume.astype(np.float32), general.network, general.inferer, general.percentiles,
                             smoothing=general.smoothing)
    nii = _nifti(_download(client, summary, "nifti"), tmp_path)
    assert nii.shape == (128, 128, 1)
    np.testing.assert_allclose(nii.affine, plan.affine, atol=1e-4)
    np.testing.assert_allclose(np.asarray(nii.dataobj), expected[0], atol=1e-2)

    (derived,) = _dicoms(_download(client, summary, "dicom"))
    assert derived.SeriesInstanceUID != source.SeriesInstanceUID
    assert derived.SOPInstanceUID != source.SOPInstanceUID
    assert derived.StudyInstanceUID == source.StudyInstanceUID
    assert derived.ImageType[0] == "DERIVED" and "medden serve" in derived.DerivationDescription
    modality = derived.pixel_array.T * float(derived.RescaleSlope) + float(derived.RescaleIntercept)
    assert np.abs(modality - np.round(expected[0, ..., 0])).max() <= 1.0


def test_multiframe_dicom_has_a_slice_per_frame(client, tmp_path):
    pytest.importorskip("data_store", reason="emri_small.dcm comes with pydicom-data (the samples extra)")
    source = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    summary = _ok(_post(client, "emri.dcm", Path(get_testdata_file("emri_small.dcm")).read_bytes()))
    assert summary["shape"] == [1, 64, 64, 10] and summary["slices"] == 10
    last = _slice(client, summary, 9, "denoised")
    assert last.shape == (64, 64) and not np.array_equal(last, _slice(client, summary, 0, "denoised"))
    missing = client.get(summary["slice_url"].format(k=10, view="denoised"))
    assert missing.status_code == 404 and "slices 0 to 9" in missing.json()["detail"]
    (derived,) = _dicoms(_download(client, summary, "dicom"))
    assert int(derived.NumberOfFrames) == 10 and derived.SeriesInstanceUID != source.SeriesInstanceUID
    assert _nifti(_download(client, summary, "nifti"), tmp_path).shape == (64, 64, 10)


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def _ct_slices(n: int) -> list[bytes]:
    """n slices of one new CT series made from CT_small, 2 mm apart."""
    files = []
    for ds in ct_series_datasets(n):
        out = io.BytesIO()
        ds.save_as(out)
        files.append(out.getvalue())
    return files


def test_zip_of_one_series_is_read_without_using_member_paths(client, temp_root):
    slices = _ct_slices(3)
    members = {"../../escaped.dcm": slices[0], "/abs/b.dcm": slices[1], "dir/c": slices[2], "README.txt": b"hi"}
    summary = _ok(_post(client, "series.zip", _zip(members)))
    assert summary["kind"] == "dicom" and summary["slices"] == 3
    assert any("1 file(s) of the zip were left out" in note for note in summary["notes"])
    assert not list(temp_root.parent.rglob("escaped.dcm")) and not Path("/abs/b.dcm").exists()
    derived = _dicoms(_download(client, summary, "dicom"))
    assert len(derived) == 3 and len({ds.SeriesInstanceUID for ds in derived}) == 1


def test_zip_refusals(client):
    two_series = _zip({"a.dcm": _ct_slices(1)[0], "b.dcm": Path(get_testdata_file("MR_small.dcm")).read_bytes()})
    answer = _post(client, "two.zip", two_series)
    assert answer.status_code == 422 and "holds 2 image series" in answer.json()["detail"]
    bomb = _zip({"zeros.dcm": bytes(4 * LIMIT + 1)})  # a few KB that unpack past 4x the upload limit
    assert len(bomb) < LIMIT
    answer = _post(client, "bomb.zip", bomb)
    assert answer.status_code == 413 and "unpacks to more than" in answer.json()["detail"]


# ----------------------------------------------------------------------------- NIfTI and PNG


def test_nifti_upload_keeps_shape_and_affine_and_reduces_noise(client, tmp_path):
    clean, noisy = zip(*(_phantom(seed=k) for k in range(3)))
    clean, noisy = np.stack(clean, -1).transpose(1, 0, 2), np.stack(noisy, -1).transpose(1, 0, 2)  # (H, W, D)
    affine = np.array([[0.9, 0, 0, -20], [0, 0.9, 0, 10], [0, 0, 2.5, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(noisy, affine), tmp_path / "noisy.nii.gz")
    # named .bin: the type comes from the content (gzip + NIfTI header), not the name
    summary = _ok(_post(client, "volume.bin", (tmp_path / "noisy.nii.gz").read_bytes()))
    assert summary["kind"] == "nifti" and summary["shape"] == [1, 40, 48, 3] and summary["slices"] == 3
    assert set(summary["downloads"]) == {"nifti"}
    nii = _nifti(_download(client, summary, "nifti"), tmp_path)
    denoised = np.asarray(nii.dataobj)
    assert nii.shape == (40, 48, 3)
    np.testing.assert_allclose(nii.affine, affine, atol=1e-5)
    def rmse(x):
        return float(np.sqrt(np.mean((x - clean) ** 2)))

    assert rmse(denoised) < 0.7 * rmse(noisy)
    assert _slice(client, summary, 2, "noisy").shape == (48, 40)  # rows down the image: (W, H)


@pytest.mark.parametrize("bits", [8, 16])
def test_grey_png_round_trip(client, tmp_path, bits):
    clean, noisy = _phantom()
    pixels = np.clip(noisy if bits == 16 else noisy / 4, 0, None).astype(np.uint16 if bits == 16 else np.uint8)
    summary = _ok(_post(client, "slide.png", _png(pixels)))
    assert summary["kind"] == "png" and summary["shape"] == [1, 40, 48, 1]
    assert set(summary["downloads"]) == {"nifti", "png"}
    noisy_view = _slice(client, summary, 0, "noisy")
    assert noisy_view.shape == (48, 40)
    assert np.corrcoef(noisy_view.ravel().astype(float), pixels.ravel().astype(float))[0, 1] > 0.95  # not transposed
    with Image.open(io.BytesIO(_download(client, summary, "png"))) as png:
        assert png.size == (40, 48) and png.mode == ("L" if bits == 8 else "I;16")
        out = np.asarray(png).astype(float)
    scale = 1.0 if bits == 16 else 0.25
    assert np.sqrt(np.mean((out - scale * clean) ** 2)) < 0.7 * np.sqrt(np.mean((pixels - scale * clean) ** 2))
    assert _nifti(_download(client, summary, "nifti"), tmp_path).shape == (40, 48)


# ----------------------------------------------------------------------------- refusals


def _corrupt_gzip() -> bytes:
    return gzip.compress(b"\x00" * 600)[:12] + b"garbage that is not deflate" * 4


@pytest.mark.parametrize("name,content,bundle,status,message", [
    ("notes.txt", b"just some text\n" * 20, None, 415, "not a type the viewer reads"),
    ("image.dcm", b"no marker here", None, 415, "no 'DICM' marker"),
    ("MR_truncated.dcm", "MR_truncated", None, 422, "pixel data is truncated"),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, None, 422, "damaged or truncated"),
    ("scan.nii.gz", "corrupt-gzip", None, 422, "gzip stream does not decompress"),
    ("empty.dcm", b"", None, 422, "empty"),
    ("CT_small.dcm", "CT_small", "nope", 400, "unknown bundle 'nope'; choose one of: .*general_denoiser"),
    ("CT_small.dcm", "CT_small", "recorruption_camelyon_gaussian", 422,
     "3-channel .RGB. images, but this image has 1 channel"),
])
def test_refusals_say_what_is_wrong(client, name, content, bundle, status, message):
    if content == "corrupt-gzip":
        content = _corrupt_gzip()
    elif isinstance(content, str):
        content = Path(get_testdata_file(f"{content}.dcm")).read_bytes()
    answer = _post(client, name, content, bundle)
    assert answer.status_code == status
    assert re.search(message, answer.json()["detail"]), answer.json()["detail"]


def test_too_large_upload_is_refused_with_the_limit(client):
    answer = _post(client, "big.dcm", b"\0" * (LIMIT + 1))
    assert answer.status_code == 413
    assert answer.json()["detail"].startswith("the file is larger than this server's upload limit of 2 MB")
    assert "--max-upload-mb" in answer.json()["detail"]
    assert _post(client, "fits.png", _png(np.zeros((8, 8), np.uint8))).status_code == 200


def _multipart(payload: bytes, boundary: str = "BOUNDARY") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.dcm\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()


def test_upload_stops_writing_at_the_limit_and_drains_the_rest(tmp_path):
    body = _multipart(b"x" * 10_000)
    sent = []

    async def stream():
        for start in range(0, len(body), 1000):
            sent.append(start)
            yield body[start:start + 1000]

    headers = {"content-type": "multipart/form-data; boundary=BOUNDARY"}
    with pytest.raises(UploadError, match="upload limit of 4.88 KB") as caught:
        asyncio.run(receive_upload(headers, stream(), tmp_path, max_bytes=5000))
    assert caught.value.status == 413
    assert (tmp_path / "upload").stat().st_size <= 5000  # never more than the limit on disk
    assert len(sent) == -(-len(body) // 1000)  # the whole body was read (and dropped)

    (tmp_path / "ok").mkdir()
    upload = asyncio.run(receive_upload(headers, stream(), tmp_path / "ok", max_bytes=10_000))
    assert upload.size == 10_000 and upload.filename == "x.dcm" and upload.path.read_bytes() == b"x" * 10_000


def test_declared_too_large_body_is_refused_before_parsing(tmp_path):
    async def stream():
        yield b"not even multipart"

    headers = {"content-type": "multipart/form-data; boundary=B", "content-length": str(10**9)}
    with pytest.raises(UploadError, match="upload limit of 1 MB"):
        asyncio.run(receive_upload(headers, stream(), tmp_path, max_bytes=2**20))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UploadError, match="send the file as multipart/form-data") as caught:
        asyncio.run(receive_upload({"content-type": "application/json"}, stream(), tmp_path, max_bytes=2**20))
    assert caught.value.status == 400


# ----------------------------------------------------------------------------- temporary files, jobs


def test_each_upload_lives_in_its_own_folder_deleted_before_the_answer(client, temp_root, monkeypatch):
    import medden.apps.serve.app as app_module

    seen = []
    original = app_module.read_upload

    def spy(path, filename, folder, max_unpacked):
        seen.append((folder, path.is_file(), folder.parent == temp_root))
        return original(path, filename, folder, max_unpacked)

    monkeypatch.setattr(app_module, "read_upload", spy)
    _ok(_post(client, "a.png", _png(np.full((8, 8), 7, np.uint8))))
    assert _post(client, "b.txt", b"text").status_code == 415
    assert [(exists, under_root) for _, exists, under_root in seen] == [(True, True), (True, True)]
    assert seen[0][0] != seen[1][0] and not any(folder.exists() for folder, _, _ in seen)


def test_only_the_latest_jobs_are_kept(temp_root):
    with TestClient(create_app(["general_denoiser"], temp_root=temp_root, device="cpu", max_jobs=1),
                    base_url=LOCAL) as c:
        first = _ok(_post(c, "a.png", _png(np.full((8, 8), 7, np.uint8))))
        second = _ok(_post(c, "b.png", _png(np.full((8, 8), 9, np.uint8))))
        gone = c.get(first["slice_url"].format(k=0, view="noisy"))
        assert gone.status_code == 404 and "upload the file again" in gone.json()["detail"]
        assert c.get(second["slice_url"].format(k=0, view="noisy")).status_code == 200
        assert c.get(second["downloads"]["nifti"].replace("nifti", "dicom")).status_code == 404
        assert c.get("/api/bundles").json()["bundles"] == ["general_denoiser"]


# ----------------------------------------------------------------------------- command line


def test_cli_listens_on_localhost_by_default():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.max_upload_mb, args.bundles) == ("127.0.0.1", 8000, 100.0, None)
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "0.0.0.0 exposes the viewer to the network" in " ".join(help_text.split())


def test_cli_starts_uvicorn_with_the_options(monkeypatch, capsys):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(app=app, **kwargs))
    assert main(["serve", "--port", "8765", "--max-upload-mb", "1.5", "--bundles", "general_denoiser"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8765)
    assert "http://127.0.0.1:8765/" in capsys.readouterr().out
    with TestClient(started["app"], base_url=LOCAL) as c:
        assert c.get("/api/bundles").json()["bundles"] == ["general_denoiser"]
        assert c.get("/api/bundles").json()["max_upload_bytes"] == int(1.5 * 2**20)


def test_cli_refuses_bundles_that_cannot_denoise_images(capsys):
    assert main(["serve", "--bundles", "n2n_kspace_mri"]) == 1
    assert "bundle 'n2n_kspace_mri' cannot denoise images" in capsys.readouterr().err
    assert main(["serve", "--bundles", "no_such_bundle"]) == 1
    assert "unknown bundle 'no_such_bundle'" in capsys.readouterr().err


def test_missing_serve_extra_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "medden\[serve\]"'):
        create_app()
    assert main(["serve"]) == 1
    assert 'pip install "medden[serve]"' in capsys.readouterr().err


def test_logs_hold_no_file_names_or_patient_identifiers(client, caplog):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with caplog.at_level(logging.DEBUG):
        png = _ok(_post(client, "Doe_John_12345.png", _png(np.full((8, 8), 3, np.uint8))))
        dicom = _ok(_post(client, "CT_small.dcm", Path(get_testdata_file("CT_small.dcm")).read_bytes()))
    assert png["job"] in caplog.text and dicom["job"] in caplog.text  # jobs are logged
    for private in ("Doe_John_12345", "CT_small", str(source.PatientName), str(source.PatientID)):
        assert private not in caplog.text
    assert "Doe_John_12345" not in json.dumps(png)


def test_a_result_worse_than_its_upload_carries_a_warning(client, monkeypatch):
    from medden.bundle import Bundle

    def adds_a_checkerboard(self, image, progress=None):
        image = np.asarray(image, np.float32)
        checker = (-1.0) ** np.add.outer(np.arange(image.shape[1]), np.arange(image.shape[2]))
        return image + 40 * checker[None, :, :, None]

    content = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    monkeypatch.setattr(Bundle, "denoise", adds_a_checkerboard)
    summary = _ok(_post(client, "ct.dcm", content))
    assert any("repeating pattern" in warning for warning in summary["warnings"])
    assert all(f"warning: {warning}" in summary["notes"] for warning in summary["warnings"])


# ----------------------------------------------------------------------------- what the page reads: values, geometry, progress


def _values(client, summary, k, view) -> np.ndarray:
    answer = client.get(summary["values_url"].format(k=k, view=view))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
    return np.frombuffer(answer.content, dtype="<f4")


def _ct_with_tags(**tags) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_slice_values_are_the_real_units_rows_down(client, tmp_path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    summary = _ok(_post(client, "ct.dcm", Path(get_testdata_file("CT_small.dcm")).read_bytes()))
    hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)  # (rows, cols)
    noisy = _values(client, summary, 0, "noisy").reshape(128, 128)
    np.testing.assert_array_equal(noisy, hu.astype(np.float32))  # HU, not display bytes, in the DICOM's pixel order
    denoised = _values(client, summary, 0, "denoised").reshape(128, 128)
    nii = np.asarray(_nifti(_download(client, summary, "nifti"), tmp_path).dataobj)[..., 0]  # (H, W) = (cols, rows)
    np.testing.assert_allclose(denoised, nii.T, atol=1e-3)
    np.testing.assert_allclose(_values(client, summary, 0, "difference").reshape(128, 128), noisy - denoised, atol=1e-4)
    assert summary["channels"] == 1
    assert client.get(summary["values_url"].format(k=1, view="noisy")).status_code == 404
    bad_view = client.get(summary["values_url"].format(k=0, view="noise"))
    assert bad_view.status_code == 404 and "the views are noisy, denoised, difference" in bad_view.json()["detail"]


def test_rgb_values_keep_their_channels(client):
    rgb = np.random.default_rng(3).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    summary = _ok(_post(client, "tile.png", _png(rgb), bundle="general_denoiser"))
    assert summary["channels"] == 3
    np.testing.assert_array_equal(_values(client, summary, 0, "noisy").reshape(12, 10, 3), rgb)
    assert summary["info"]["orientation"] is None and summary["info"]["spacing"] is None  # a PNG says neither


def test_dicom_info_window_tags_orientation_and_no_patient_data(client):
    content = _ct_with_tags(WindowCenter=[50, 300], WindowWidth=[350, 1500], PatientName="Doe^Jane",
                            PatientID="ID-98765", PatientBirthDate="19610203")
    answer = _post(client, "ct.dcm", content)
    info = _ok(answer)["info"]
    for private in ("Doe", "Jane", "ID-98765", "19610203", "CompressedSamples"):
        assert private not in answer.text
    assert info["modality"] == "CT" and info["units"] == "HU" and (info["rows"], info["cols"]) == (128, 128)
    assert info["window"] == {"width": 350.0, "level": 50.0, "source": "DICOM window tags"}  # the first pair
    assert info["presets"] == {"brain": [80.0, 40.0], "soft tissue": [400.0, 40.0], "lung": [1500.0, -600.0],
                               "bone": [2000.0, 300.0]}
    # ImageOrientationPatient 1\0\0\0\1\0: columns run to the patient's left, rows to posterior
    assert info["orientation"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    np.testing.assert_allclose(info["spacing"][:2], [0.661468, 0.661468], atol=1e-4)
    no_tags = _ok(_post(client, "ct.dcm", Path(get_testdata_file("CT_small.dcm")).read_bytes()))["info"]
    assert no_tags["window"] == {"width": 400.0, "level": 40.0, "source": "soft tissue"}


def test_nifti_info_follows_the_affine_and_uses_percentiles(client, tmp_path):
    _, noisy = _phantom()
    volume = np.stack([noisy.T] * 2, -1)  # (H, W, D)
    affine = np.array([[-0.8, 0, 0, 0], [0, 0, 1.5, 0], [0, -0.8, 0, 0], [0, 0, 0, 1]])  # a coronal slab
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "v.nii.gz")
    summary = _ok(_post(client, "v.nii.gz", (tmp_path / "v.nii.gz").read_bytes(), bundle="general_denoiser"))
    info = summary["info"]
    # voxel axis 0 (across the screen) runs to -x, the patient's left; axis 1 (down) to -z, inferior
    assert info["orientation"] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert info["modality"] == "NIFTI" and info["units"] == "" and info["presets"] == {}
    np.testing.assert_allclose(info["spacing"], [0.8, 0.8, 1.5])
    low, high = np.percentile(volume, (1, 99))
    assert info["window"]["source"] == "1-99 percentiles"
    assert info["window"]["width"] == pytest.approx(high - low, rel=1e-4)
    assert info["window"]["level"] == pytest.approx((high + low) / 2, rel=1e-4)


def test_progress_of_an_upload_can_be_polled(client):
    token = "t0k3n_" + "a" * 20
    answer = client.post("/api/denoise", files={"file": ("x.png", _png(np.full((8, 8), 3, np.uint8)))},
                         data={"progress": token, "bundle": "general_denoiser"})
    _ok(answer)
    state = client.get(f"/api/progress/{token}").json()
    assert state == {"stage": "done", "done": 0, "total": 0, "fraction": 1.0, "message": "done"}
    assert client.get("/api/progress/" + "b" * 20).status_code == 404
    assert client.get("/api/progress/short").status_code == 400
    refused = client.post("/api/denoise", files={"file": ("x.png", b"x")}, data={"progress": "../etc"})
    assert refused.status_code == 400 and "random token" in refused.json()["detail"]


def test_progress_board_reports_stage_shares_and_forgets_old_entries(monkeypatch):
    from medden.apps.serve import progress

    board = progress.ProgressBoard(max_entries=2)
    board.update("a" * 16, "denoising", 5, 10, "denoised slice 5 of 10")
    assert board.get("a" * 16)["fraction"] == pytest.approx(0.1 + 0.8 * 0.5)
    board.update("b" * 16, "writing", 1, 2)
    board.update("c" * 16, "decoding")
    assert board.get("a" * 16) is None and board.get("c" * 16)["stage"] == "decoding"  # oldest dropped
    board.update("b" * 16, "done")
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    board.update("b" * 16, "done")
    clock[0] += progress.KEEP_SECONDS + 1
    assert board.get("b" * 16) is None and board.get("c" * 16) is not None  # finished ones expire, running ones stay
    with pytest.raises(ValueError, match="stage must be one of"):
        board.update("d" * 16, "resting")


@pytest.mark.parametrize("bundle", ["general_denoiser", "general_denoiser_v3"])  # 2D SliceInferer; 2.5D stacks
def test_denoising_progress_is_polled_while_the_network_runs(client, monkeypatch, bundle):
    """The board sees the denoising stage advance slice by slice while the POST is running."""
    from medden.bundle import Bundle

    token = "poll_" + "z" * 20
    seen = []
    real = Bundle.denoise

    def watched(self, image, progress=None):
        def relay(done, total):
            progress(done, total)  # the server's callback updates the board ...
            seen.append(client.get(f"/api/progress/{token}").json())  # ... which a poll then reads
        return real(self, image, progress=relay)

    monkeypatch.setattr(Bundle, "denoise", watched)
    volume = np.stack([_phantom(seed=k)[1] for k in range(20)], -1)  # (W, H, D); the network takes 8 slices a call
    buffer = io.BytesIO(gzip.compress(nib.Nifti1Image(volume.transpose(1, 0, 2), np.eye(4)).to_bytes()))
    _ok(client.post("/api/denoise", files={"file": ("v.nii.gz", buffer.getvalue())},
                    data={"progress": token, "bundle": bundle}))
    assert [(s["stage"], s["done"], s["total"]) for s in seen] == [("denoising", k, 20) for k in (8, 16, 20)]
    fractions = [s["fraction"] for s in seen]
    assert fractions == sorted(fractions) and 0.1 < fractions[0] < fractions[-1] <= 0.9
    assert seen[1]["message"] == "denoised 16 of 20 slice(s)"


def test_window_tags_of_plain_and_enhanced_headers():
    from pydicom.dataset import Dataset

    from medden.apps.serve.display import window_tags

    def dataset(**tags):
        ds = Dataset()
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        return ds

    assert window_tags(dataset(WindowCenter=[40, 300], WindowWidth=[80, 2000])) == (80.0, 40.0)
    enhanced = dataset(SharedFunctionalGroupsSequence=[dataset(FrameVOILUTSequence=[
        dataset(WindowCenter=600, WindowWidth=1200)])])
    assert window_tags(enhanced) == (1200.0, 600.0)
    per_frame = dataset(PerFrameFunctionalGroupsSequence=[dataset(FrameVOILUTSequence=[
        dataset(WindowCenter="35", WindowWidth="90")])] * 3)
    assert window_tags(per_frame) == (90.0, 35.0)
    for missing in (dataset(), dataset(WindowCenter=40), dataset(WindowCenter=40, WindowWidth=0),
                    dataset(WindowCenter=40, WindowWidth=[])):
        assert window_tags(missing) is None
