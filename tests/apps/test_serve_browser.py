"""`medden serve` in a real browser: the server on a free localhost port, Debian's Chromium driven
headless by Playwright, a DICOM uploaded, the three views shown, the derived series downloaded, a
multi-frame file's slice slider and a refused upload's message on the page.

Playwright is pointed at the system's Chromium (``executable_path``); it never downloads a browser.
Without Chromium or Playwright the tests skip and say why; ``.ci/run`` installs both.
"""

import io
import shutil
import socket
import threading
import time
import zipfile

import pydicom
import pytest
from pydicom.data import get_testdata_file

pytest.importorskip("fastapi", reason='the web viewer needs the serve extra: pip install "medden[serve]"')
pytest.importorskip("uvicorn", reason='the web viewer needs the serve extra: pip install "medden[serve]"')
pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright's Python package "
                                                  "(pip install playwright; the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); "
                                                         ".ci/run installs it")

LOADED = """(id) => {
    const img = document.getElementById(id);
    return !document.getElementById('result').hidden && img.complete && img.naturalWidth > 0;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The viewer (general_denoiser only) on a free port of 127.0.0.1: ``(url, upload temp root)``."""
    import uvicorn

    from medden.apps.serve import create_app

    temp_root = tmp_path_factory.mktemp("uploads")
    app = create_app(["general_denoiser"], temp_root=temp_root, device="cpu", preload=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the viewer's server did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", temp_root
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server[0])
    page.wait_for_selector("#bundle option[value='general_denoiser']", state="attached")
    yield page
    context.close()


def test_upload_dicom_see_the_views_and_download_the_derived_series(page, server, tmp_path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert page.input_value("#bundle") == "general_denoiser"
    page.set_input_files("#file", get_testdata_file("CT_small.dcm"))
    page.click("#submit")
    page.wait_for_function(LOADED, arg="denoised", timeout=60_000)
    for view in ("noisy", "denoised", "difference"):
        page.wait_for_function(LOADED, arg=view, timeout=10_000)
        assert page.is_visible(f"img#{view}")
        assert page.eval_on_selector(f"img#{view}", "img => [img.naturalWidth, img.naturalHeight]") == [128, 128]
    assert page.is_hidden("#error") and page.is_hidden("#slice")  # one slice: no slider
    assert "Denoised a DICOM image (128 × 128 × 1) with general_denoiser" in page.inner_text("#status")
    assert page.is_visible("#download-dicom") and page.is_visible("#download-nifti")

    with page.expect_download() as caught:
        page.click("#download-dicom")
    download = tmp_path / caught.value.suggested_filename
    caught.value.save_as(download)
    assert download.name == "CT_small_denoised_dicom.zip"
    with zipfile.ZipFile(download) as archive:
        derived = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()]
    assert len(derived) == 1 and derived[0].SeriesInstanceUID != source.SeriesInstanceUID
    assert derived[0].ImageType[0] == "DERIVED" and derived[0].pixel_array.shape == (128, 128)

    screenshot = tmp_path / "medden_serve.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    assert list(server[1].iterdir()) == []  # the upload was deleted


def test_slice_slider_moves_through_a_multiframe_file(page):
    pytest.importorskip("data_store", reason="emri_small.dcm comes with pydicom-data (the samples extra)")
    page.set_input_files("#file", get_testdata_file("emri_small.dcm"))
    page.click("#submit")
    page.wait_for_function(LOADED, arg="denoised", timeout=60_000)
    assert page.is_visible("#slice") and page.get_attribute("#slice", "max") == "9"
    assert "/slices/5/denoised.png" in page.get_attribute("#denoised", "src")  # starts in the middle
    page.fill("#slice", "9")
    page.wait_for_function(LOADED, arg="difference", timeout=10_000)
    assert "/slices/9/denoised.png" in page.get_attribute("#denoised", "src")
    assert page.inner_text("#slice-label") == "10 / 10"


def test_wrong_file_type_shows_a_message(page, server):
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                          "buffer": b"these are notes, not an image\n"}])
    page.click("#submit")
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    message = page.inner_text("#error")
    assert "not a type the viewer reads" in message and "NIfTI" in message and "PNG" in message
    assert page.is_hidden("#result")
    assert list(server[1].iterdir()) == []
