"""`medden serve` in a real browser: the server on a free localhost port, Debian's Chromium driven
headless by Playwright, files uploaded and every reading tool driven with the mouse and keys.
The checks read the screenshots' pixels and compare them with what Python computes from the
uploaded values: the grey of each pixel under a window, the size of a known square when zoomed,
its shift when panned, the ROI's mean and SD in HU, the progress bar's fill.

Screenshots go to ``$MEDDEN_SCREENSHOT_DIR`` or ``<repo>/test-artifacts/viewer-screenshots``.
Playwright is pointed at the system's Chromium (``executable_path``); it never downloads a browser.
Without Chromium or Playwright the tests skip and say why; ``.ci/run`` installs both.
"""

import gzip
import io
import math
import os
import shutil
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

pytest.importorskip("fastapi", reason='the web viewer needs the serve extra: pip install "medden[serve]"')
pytest.importorskip("uvicorn", reason='the web viewer needs the serve extra: pip install "medden[serve]"')
pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright's Python package "
                                                  "(pip install playwright; the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); "
                                                         ".ci/run installs it")

SHOWN = "(k) => document.getElementById('views').dataset.slice === String(k)"
PATIENT = {"PatientName": "Doe^Jane", "PatientID": "ID-98765", "PatientBirthDate": "19610203"}
#: the volume test's square: rows/cols 24..39 of a 64 x 64 slice, value 300 + 50 k on slice k
SQUARE = slice(24, 40)


def _screenshot_dir() -> Path:
    folder = Path(os.environ.get("MEDDEN_SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "test-artifacts"
                  / "viewer-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(page, name: str, selector: str | None = None) -> np.ndarray:
    """Screenshot the page (or one element), save it as ``name``.png, return RGB pixels."""
    path = _screenshot_dir() / f"{name}.png"
    if selector is None:
        page.screenshot(path=path, full_page=True)
    else:  # the element's box may start at a fractional pixel; the browser draws it from the rounded one
        page.locator(selector).scroll_into_view_if_needed()
        box = page.locator(selector).bounding_box()
        width, height = page.eval_on_selector(selector, "e => [e.clientWidth || e.offsetWidth, "
                                                        "e.clientHeight || e.offsetHeight]")
        page.screenshot(path=path, clip={"x": round(box["x"]), "y": round(box["y"]), "width": width, "height": height})
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB")).astype(np.int32)


def _grey(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """The grey a window maps values to (as a viewer does: low black, high white)."""
    low = level - width / 2
    return np.clip((values - low) / width * 255.0, 0, 255)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The viewer (general_denoiser only) on a free port of 127.0.0.1: ``(url, upload temp root)``."""
    from medden.apps.serve import create_app, serving

    temp_root = tmp_path_factory.mktemp("uploads")
    app = create_app(["general_denoiser"], temp_root=temp_root, device="cpu", preload=True)
    with serving(app, start_timeout_s=30) as url:
        yield url, temp_root


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000},
                                  device_scale_factor=1)
    page = context.new_page()
    page.goto(server[0])
    page.wait_for_selector("#bundle option[value='general_denoiser']", state="attached")
    yield page
    context.close()


def _upload(page, path_or_files, slice_shown: int, timeout=60_000):
    page.set_input_files("#file", path_or_files)
    page.click("#submit")
    page.wait_for_function(SHOWN, arg=slice_shown, timeout=timeout)


def _values(page, k: int, view: str, shape) -> np.ndarray:
    """The values the page was sent, read through the same URL (rows down)."""
    url = page.evaluate("() => document.querySelector('#download-nifti').href").split("/download/")[0]
    return np.frombuffer(page.request.get(f"{url}/slices/{k}/{view}.f32").body(), "<f4").reshape(shape)


def _js_number(value: float) -> str:
    """A number as the page writes it: 4 significant digits, or 1 decimal from 100 on."""
    return f"{float(f'{value:.1f}' if abs(value) >= 100 else f'{value:.4g}'):g}"


def _panel_width(page) -> int:
    return page.evaluate("() => document.getElementById('noisy').clientWidth")


def _pixel_centres(box_size: float, n: int) -> np.ndarray:
    """Screen columns of image pixel centres 0..n-1 at the fit zoom of an n-pixel image in a square panel."""
    return np.floor((np.arange(n) + 0.5) * box_size / n).astype(int)


def _check_panel_shows(pixels: np.ndarray, expected_grey: np.ndarray, step: int = 3) -> None:
    """Every ``step``-th image pixel's centre on screen has the expected grey (+-1.5 levels); the
    edges, where the orientation letters are, are left out."""
    n = expected_grey.shape[0]
    centres = _pixel_centres(pixels.shape[1], n)
    inner = np.flatnonzero((centres > 24) & (centres < pixels.shape[1] - 24))[::step]
    grid = np.ix_(centres[inner], centres[inner])
    shown = pixels[grid]
    assert np.all(shown[..., 0] == shown[..., 1]) and np.all(shown[..., 1] == shown[..., 2])  # grey
    difference = np.abs(shown[..., 0] - expected_grey[np.ix_(inner, inner)])
    assert difference.max() <= 1.5, f"{(difference > 1.5).mean():.1%} of the sampled pixels differ"


def _ct_file(tmp_path: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.WindowCenter, ds.WindowWidth = 50, 350
    path = tmp_path / "ct_doe.dcm"
    ds.save_as(path)
    return path


def test_ct_window_level_roi_orientation_and_download(page, server, tmp_path):
    path = _ct_file(tmp_path)
    source = pydicom.dcmread(path)
    hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    _upload(page, str(path), 0)
    _shot(page, "ct_loaded")

    # what is shown beside the image, and nothing of the patient
    info = page.inner_text("#info")
    assert "CT" in info and "128 × 128 pixels" in info and "0.661 × 0.661 mm" in info and "HU" in info
    html = page.content()
    for private in ("Doe", "Jane", "ID-98765", "19610203", "1961"):
        assert private not in html
    # orientation from ImageOrientationPatient (LPS): the right edge lies where the row direction
    # points, the bottom where the column direction points
    lps = ("L", "P", "S")
    opposite = {"L": "R", "P": "A", "S": "I", "R": "L", "A": "P", "I": "S"}
    row, column = np.array(source.ImageOrientationPatient[:3]), np.array(source.ImageOrientationPatient[3:])

    def letter(cosines):
        axis = int(np.argmax(np.abs(cosines)))
        return lps[axis] if cosines[axis] > 0 else opposite[lps[axis]]

    labels = {side: page.inner_text(f".panel:has(#noisy) .orient.{side}")
              for side in ("left", "right", "top", "bottom")}
    assert labels == {"right": letter(row), "left": opposite[letter(row)], "bottom": letter(column),
                      "top": opposite[letter(column)]}
    assert page.locator(".orient.right").all_inner_texts() == [letter(row)] * 3  # on all three panels

    # a 128 x 128 image fits a panel at 1:1, so it starts there: one image pixel per screen pixel, centred
    assert page.inner_text("#wl-readout") == "W 350 L 50 HU"
    assert page.inner_text("#zoom-label") == "100%"
    width = _panel_width(page)
    pixels = _shot(page, "ct_default_full_resolution", "#noisy")
    assert _matches(pixels, *_screen_grey(_grey(hu, 350, 50), width, 1.0, 64, 64)) > 0.995
    outside = _screen_grey(_grey(hu, 350, 50), width, 1.0, 64, 64)[1] == 0  # black around the image
    outside[:26], outside[-26:], outside[:, :26], outside[:, -26:] = False, False, False, False  # edge letters
    assert np.all(pixels[: outside.shape[0], : outside.shape[1]][outside[: pixels.shape[0], : pixels.shape[1]]] == 0)

    # the starting window is the file's WindowCenter/WindowWidth: every sampled pixel has its grey (at Fit)
    page.click("#zoom-fit")
    _check_panel_shows(_shot(page, "ct_window_from_tags", "#noisy"), _grey(hu, 350, 50))
    centre = (slice(50, 78), slice(50, 78))

    # presets change the grey of a known region as the windows say
    greys = {}
    for preset, (width, level) in {"brain": (80, 40), "bone": (2000, 300), "soft tissue": (400, 40)}.items():
        page.click(f"#presets button[data-preset='{preset}']")
        pixels = _shot(page, f"ct_preset_{preset.replace(' ', '_')}", "#noisy")
        _check_panel_shows(pixels, _grey(hu, width, level))
        greys[preset] = pixels[..., 0][(slice(160, 240), slice(160, 240))].mean()
    assert abs(greys["brain"] - greys["bone"]) > 20

    # dragging right 100 px widens the window by e^0.5, dragging down 40 px raises the level by 40 * W / 200
    box = page.locator("#noisy").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 50, y + 20, steps=3)
    page.mouse.move(x + 100, y + 40, steps=3)
    page.mouse.up()
    width, level = 400 * math.exp(0.5), 40 + 40 * 400 / 200
    assert page.inner_text("#wl-readout") == f"W {width:.1f} L {level:g} HU"
    dragged = _shot(page, "ct_after_drag", "#noisy")
    _check_panel_shows(dragged, _grey(hu, width, level))
    assert abs(dragged[..., 0][(slice(160, 240), slice(160, 240))].mean() - greys["soft tissue"]) > 5

    # ROI: drag a rectangle; mean and SD in HU of the same box on noisy and denoised
    page.check("input[name=tool][value=roi]")
    scale = _panel_width(page) / 128
    start, end = (30.0, 40.0), (150.0, 170.0)  # within the canvas, CSS pixels
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=5)
    page.mouse.up()
    x0, y0 = int(start[0] // scale), int(start[1] // scale)
    x1, y1 = int(end[0] // scale), int(end[1] // scale)
    caption = page.locator("#roi-caption")
    assert [int(caption.get_attribute(f"data-{key}")) for key in ("x0", "x1", "y0", "y1")] == [x0, x1, y0, y1]
    region = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    nii = tmp_path / "denoised.nii.gz"
    with page.expect_download() as caught:
        page.click("#download-nifti")
    caught.value.save_as(nii)
    denoised = np.asarray(nib.load(nii).dataobj)[..., 0].T  # (H, W) = (cols, rows) -> rows down
    for view, values in (("noisy", hu), ("denoised", denoised)):
        row = page.locator(f"#roi-{view}")
        mean, std = float(row.get_attribute("data-mean")), float(row.get_attribute("data-std"))
        assert mean == pytest.approx(values[region].mean(), abs=1e-2)
        assert std == pytest.approx(values[region].std(), abs=1e-2)
        assert row.locator(".mean").inner_text() == f"{_js_number(mean)} HU"
        assert row.locator(".std").inner_text() == f"{_js_number(std)} HU"
    # the box is drawn on all three panels, at the same place
    left = int(round(x0 * scale))
    for view in ("noisy", "denoised", "difference"):
        pixels = _shot(page, f"ct_roi_{view}", f"#{view}")
        column = pixels[int((y0 + y1) / 2 * scale), left - 1: left + 2]
        assert any(p[0] > 200 and p[1] > 200 and p[2] < 120 for p in column), f"no yellow ROI edge on {view}"
    _shot(page, "ct_roi_page")

    # the derived DICOM series still downloads
    with page.expect_download() as caught:
        page.click("#download-dicom")
    download = tmp_path / caught.value.suggested_filename
    caught.value.save_as(download)
    with zipfile.ZipFile(download) as archive:
        derived = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()]
    assert len(derived) == 1 and derived[0].SeriesInstanceUID != source.SeriesInstanceUID
    assert derived[0].ImageType[0] == "DERIVED" and derived[0].pixel_array.shape == (128, 128)
    assert list(server[1].iterdir()) == []  # the upload was deleted


def _volume(tmp_path: Path, slices: int = 12) -> tuple[Path, np.ndarray]:
    """A NIfTI volume of noise around 100 with a 16-pixel square of 300 + 50 k on slice k;
    returns the file and the values as shown, ``(D, rows, cols)``."""
    rng = np.random.default_rng(0)
    shown = rng.normal(100, 10, (slices, 64, 64)).astype(np.float32)
    for k in range(slices):
        shown[k, SQUARE, SQUARE] += 200 + 50 * k
    path = tmp_path / "volume.nii.gz"
    path.write_bytes(gzip.compress(nib.Nifti1Image(shown.transpose(2, 1, 0), np.diag([2.0, 2.0, 3.0, 1.0])).to_bytes()))
    return path, shown


def _square_grey(pixels: np.ndarray) -> float:
    """Mean grey of the square's middle on a fit-zoomed 64-pixel panel."""
    size = pixels.shape[1]
    inner = slice(int(28 * size / 64), int(36 * size / 64))
    return float(pixels[..., 0][inner, inner].mean())


def _expected_square_grey(shown: np.ndarray, k: int) -> float:
    low, high = np.percentile(shown, (1, 99))
    return float(_grey(shown[k, 28:36, 28:36], high - low, (high + low) / 2).mean())


@pytest.fixture
def slow_network(monkeypatch):
    """Hold the server 1.5 s after each progress report of the denoising, so that the page's
    progress can be seen mid-way (the server runs in this process)."""
    from medden.bundle import Bundle

    real = Bundle.denoise

    def held(self, image, progress=None):
        def relay(done, total):
            progress(done, total)
            if done < total:
                time.sleep(1.5)
        return real(self, image, progress=relay if progress is not None else None)

    monkeypatch.setattr(Bundle, "denoise", held)


def test_progress_slices_by_wheel_and_keys_and_linked_zoom_and_pan(page, tmp_path, slow_network):
    path, shown = _volume(tmp_path)
    page.evaluate("""() => {
        window.seenProgress = [];
        new MutationObserver(() => window.seenProgress.push([document.getElementById('progress-text').textContent,
                                                           document.getElementById('progress-bar').value]))
            .observe(document.getElementById('progress-text'), {childList: true, characterData: true, subtree: true});
    }""")
    page.set_input_files("#file", str(path))
    page.click("#submit")
    # mid-way: the server has denoised 8 of 12 slices (the network takes 8 a call) and the bar shows it
    page.wait_for_function("() => document.getElementById('progress-text').textContent.includes('8 of 12')",
                           timeout=60_000)
    assert page.is_visible("#progress")
    bar = _shot(page, "volume_progress_bar", "#progress-bar")
    expected = 0.3 + 0.7 * (0.1 + 0.8 * 8 / 12)
    _shot(page, "volume_progress_page")
    page.wait_for_function(SHOWN, arg=6, timeout=60_000)
    seen = page.evaluate("() => window.seenProgress")
    texts = [text for text, _ in seen]
    assert any(text.startswith("Uploading") for text in texts)
    assert "Server: denoised 8 of 12 slice(s)" in texts
    values = [value for _, value in seen]
    assert values == sorted(values)
    assert page.is_hidden("#progress")
    # the bar's filled part: the columns of its middle row that differ from its empty end
    middle = bar[bar.shape[0] // 2]
    empty = middle[-3]
    filled = np.abs(middle - empty).sum(axis=1) > 60
    assert filled[: int(0.95 * expected * len(filled))].mean() > 0.9
    assert filled[int(1.05 * expected * len(filled)): -4].mean() < 0.1

    # slices: starts in the middle; the wheel and the keys move through them; the square's grey follows (at Fit)
    assert page.inner_text("#zoom-label") == "100%"  # a 64 x 64 image starts at 1:1
    page.click("#zoom-fit")
    assert page.inner_text("#slice-label") == "7 / 12"
    assert _square_grey(_shot(page, "volume_slice_6", "#noisy")) == pytest.approx(_expected_square_grey(shown, 6),
                                                                                    abs=2)
    box = page.locator("#noisy").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.wheel(0, 100)
    page.wait_for_function(SHOWN, arg=7)
    assert _square_grey(_shot(page, "volume_wheel_7", "#noisy")) == pytest.approx(_expected_square_grey(shown, 7),
                                                                                   abs=2)
    page.mouse.wheel(0, -100)
    page.wait_for_function(SHOWN, arg=6)
    for key, k in (("ArrowDown", 7), ("ArrowDown", 8), ("PageUp", 7), ("End", 11), ("ArrowUp", 10), ("Home", 0)):
        page.keyboard.press(key)
        page.wait_for_function(SHOWN, arg=k)
        assert page.inner_text("#slice-label") == f"{k + 1} / 12"
    assert _square_grey(_shot(page, "volume_key_0", "#noisy")) == pytest.approx(_expected_square_grey(shown, 0), abs=2)
    page.fill("#slice", "4")  # the slider still works
    page.wait_for_function(SHOWN, arg=4)
    assert _square_grey(_shot(page, "volume_slider_4", "#noisy")) == pytest.approx(_expected_square_grey(shown, 4),
                                                                                    abs=2)
    page.keyboard.press("End")
    page.wait_for_function(SHOWN, arg=11)

    # zoom: "+" three times enlarges the square 1.25^3 times in all panels (linked)
    def square_width(view):
        pixels = _shot(page, f"volume_{view}_{zoom_name}", f"#{view}")
        row = pixels[pixels.shape[0] // 2, 2:-2, 2]  # blue: white is bright, the yellow letters are not; the
        # element's box is fractional, so its screenshot may hold a column of the page at either end
        return int((row > 200).sum())

    def run_length(view):  # mean length of runs of equal grey along rows: image pixels grow with the zoom
        pixels = _shot(page, f"volume_{view}_{zoom_name}", f"#{view}")[..., 0]
        rows = pixels[pixels.shape[0] // 4: 3 * pixels.shape[0] // 4: 7, 30:-30]
        return rows.size / (np.count_nonzero(np.diff(rows, axis=1)) + len(rows))

    zoom_name = "fit"
    fit_scale = _panel_width(page) / 64
    before = {"noisy": square_width("noisy"), "denoised": square_width("denoised"),
              "difference": run_length("difference")}
    assert before["noisy"] == pytest.approx(16 * fit_scale, abs=2)
    assert before["denoised"] == pytest.approx(16 * fit_scale, abs=2)
    for _ in range(3):
        page.click("#zoom-in")
    zoom_name = "zoomed"
    factor = 1.25 ** 3
    assert page.inner_text("#zoom-label") == f"{round(100 * fit_scale * factor)}%"
    assert square_width("noisy") == pytest.approx(16 * fit_scale * factor, abs=2)
    assert square_width("denoised") == pytest.approx(before["denoised"] * factor, rel=0.05)  # its edges are soft
    assert run_length("difference") == pytest.approx(before["difference"] * factor, rel=0.15)

    # pan (shift+drag on the denoised panel) moves all three panels by the same pixels
    def first_bright(view):
        pixels = _shot(page, f"volume_{view}_{zoom_name}", f"#{view}")
        return int(np.argmax(pixels[pixels.shape[0] // 2, 2:-2, 2] > 200))

    difference_row = _shot(page, "volume_difference_zoomed", "#difference")[200, :, 0]
    lefts = {view: first_bright(view) for view in ("noisy", "denoised")}
    dbox = page.locator("#denoised").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(dbox["x"] + 100, dbox["y"] + 100)
    page.mouse.down()
    page.mouse.move(dbox["x"] + 140, dbox["y"] + 100, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    zoom_name = "panned"
    for view in ("noisy", "denoised"):
        assert first_bright(view) == lefts[view] + 40
    moved = _shot(page, "volume_difference_panned", "#difference")[200, :, 0]
    assert np.mean(moved[140:300] == difference_row[100:260]) > 0.95

    # 1:1 shows one image pixel per screen pixel: the square is 16 pixels wide
    page.click("#zoom-full")
    zoom_name = "full"
    assert page.inner_text("#zoom-label") == "100%" and square_width("noisy") == 16
    _shot(page, "volume_full_resolution_page")

    # the 1-panel layout keeps the slice and the zoom; the keys still scroll, Space flips the view
    page.click("#layout-one")
    assert page.inner_text("#slice-label") == "12 / 12" and page.inner_text("#zoom-label") == "100%"
    page.keyboard.press("ArrowUp")
    page.wait_for_function(SHOWN, arg=10)
    page.keyboard.press("Space")
    assert page.get_attribute("#views", "data-view") == "denoised" and page.inner_text("#slice-label") == "11 / 12"
    zoom_name = "one_panel"
    assert square_width("denoised") == pytest.approx(16, abs=2)  # its edges are soft
    low, high = np.percentile(shown, (1, 99))
    denoised = _grey(_values(page, 10, "denoised", (64, 64)).astype(np.float64), high - low, (high + low) / 2)
    state = page.evaluate("() => ({...document.getElementById('views').dataset})")
    pixels = _shot(page, "volume_one_panel_denoised", "#denoised")
    expected, inside = _screen_grey(denoised, pixels.shape[:2], 1.0, float(state["cx"]), float(state["cy"]))
    assert inside.sum() == 64 * 64 and _matches(pixels[40:], expected[40:], inside[40:]) > 0.99


def test_wrong_file_type_shows_a_message(page, server):
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                          "buffer": b"these are notes, not an image\n"}])
    page.click("#submit")
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    message = page.inner_text("#error")
    assert "not a type the viewer reads" in message and "NIfTI" in message and "PNG" in message
    assert page.is_hidden("#result") and page.is_hidden("#progress")
    assert list(server[1].iterdir()) == []


def _screen_grey(grey: np.ndarray, size: int | tuple[int, int], scale: float, cx: float,
                 cy: float) -> tuple[np.ndarray, np.ndarray]:
    """What a ``size`` x ``size`` (or ``(height, width)``) panel shows of the image ``grey`` (rows
    down) at ``scale`` screen pixels per image pixel with image point ``(cx, cy)`` at its centre:
    ``(expected, inside)``."""
    height, width = (size, size) if isinstance(size, int) else size
    cols = np.floor((np.arange(width) + 0.5 - width / 2) / scale + cx).astype(int)
    rows = np.floor((np.arange(height) + 0.5 - height / 2) / scale + cy).astype(int)
    inside = ((rows >= 0) & (rows < grey.shape[0]))[:, None] & ((cols >= 0) & (cols < grey.shape[1]))[None, :]
    expected = grey[np.clip(rows, 0, grey.shape[0] - 1)][:, np.clip(cols, 0, grey.shape[1] - 1)]
    return expected, inside


def _matches(pixels: np.ndarray, expected: np.ndarray, inside: np.ndarray) -> float:
    """The share of the panel's pixels (inside the image, away from the edge letters) within 1.5 greys."""
    n, m = min(pixels.shape[0], expected.shape[0]), min(pixels.shape[1], expected.shape[1])
    pixels, expected, inside = pixels[:n, :m, 0], expected[:n, :m], inside[:n, :m].copy()
    inside[:26], inside[-26:], inside[:, :26], inside[:, -26:] = False, False, False, False
    return float(np.mean(np.abs(pixels - expected)[inside] <= 1.5))


def test_a_1024_image_is_shown_at_full_resolution_and_zooms_about_the_pointer(page, tmp_path):
    """One image pixel per screen pixel at 1:1 (a one-pixel checkerboard survives), ctrl+wheel
    zooms about the pointer, a right drag pans: every screen pixel is checked against the file."""
    size = 1024
    yy, xx = np.mgrid[:size, :size]
    image = (40 + 150 * xx / size + 40 * yy / size).astype(np.uint8)
    checker = (slice(480, 560), slice(480, 560))
    image[checker] = np.where((yy + xx)[checker] % 2 == 0, 20, 235)
    path = tmp_path / "fine.png"
    Image.fromarray(image).save(path)
    _upload(page, str(path), 0, timeout=120_000)
    low, high = np.percentile(image, (1, 99))
    grey = _grey(image.astype(np.float64), high - low, (high + low) / 2)
    width = _panel_width(page)
    assert page.inner_text("#zoom-label") == f"{round(100 * width / size)}%"  # fit: the whole image

    page.click("#zoom-full")
    assert page.inner_text("#zoom-label") == "100%"
    pixels = _shot(page, "fine_full_resolution", "#noisy")
    assert _matches(pixels, *_screen_grey(grey, width, 1.0, size / 2, size / 2)) > 0.995
    middle = pixels[width // 2, width // 2 - 20: width // 2 + 20, 0]
    assert np.all(np.abs(np.diff(middle.astype(int))) > 150)  # the one-pixel checkerboard, not a grey blur

    box = page.locator("#noisy").bounding_box()
    px, py = 100.0, 150.0  # the pointer, in the panel
    page.mouse.move(box["x"] + px, box["y"] + py)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300 * math.log(2))  # zoom x2 about the pointer
    page.keyboard.up("Control")
    page.wait_for_function("() => document.getElementById('zoom-label').textContent === '200%'")
    # the image point under the pointer stays there (within a pixel: the panel's box may start at a
    # fractional pixel), and the panel shows exactly the view the page reports
    state = page.evaluate("() => ({...document.getElementById('views').dataset})")
    cx, cy, scale = float(state["cx"]), float(state["cy"]), float(state["scale"])
    assert scale == pytest.approx(2.0, rel=1e-3)
    assert cx == pytest.approx((px - width / 2) / 1.0 + size / 2 - (px - width / 2) / 2.0, abs=1)
    assert cy == pytest.approx((py - width / 2) / 1.0 + size / 2 - (py - width / 2) / 2.0, abs=1)
    assert _matches(_shot(page, "fine_ctrl_wheel_200", "#noisy"), *_screen_grey(grey, width, scale, cx, cy)) > 0.99
    page.mouse.down(button="right")
    page.mouse.move(box["x"] + px + 30, box["y"] + py - 16, steps=3)
    page.mouse.up(button="right")
    denoised = _grey(_values(page, 0, "denoised", (size, size)).astype(np.float64), high - low, (high + low) / 2)
    for view, shown in (("noisy", grey), ("denoised", denoised)):  # linked: both panels moved the same way
        expected = _screen_grey(shown, width, scale, cx - 30 / scale, cy + 16 / scale)
        share = _matches(_shot(page, f"fine_right_drag_{view}", f"#{view}"), *expected)
        assert share > 0.99, f"{view}: {share:.3f}"


def test_an_rgb_image_keeps_its_colours(page, tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = (200, 40, 40)
    rgb[:, 16:] = (40, 60, 220)
    path = tmp_path / "colours.png"
    Image.fromarray(rgb).save(path)
    _upload(page, str(path), 0)
    assert page.inner_text("#info").startswith("PNG · 32 × 32 pixels · pixel spacing not recorded")
    assert page.locator(".orient").all_inner_texts() == [""] * 12  # a PNG has no orientation
    low, high = np.percentile(rgb, (1, 99))
    expected = _grey(rgb.astype(np.float64), high - low, (high + low) / 2)
    pixels = _shot(page, "rgb_colours", "#noisy")
    size = pixels.shape[1]
    assert page.inner_text("#zoom-label") == "100%"  # a small image starts at 1:1, centred
    for col in (8, 24):  # the middle of each half
        shown = pixels[size // 2, size // 2 - 16 + col]
        np.testing.assert_allclose(shown, expected[16, col], atol=1.5)
    assert np.all(pixels[size // 2, [size // 2 - 20, size // 2 + 20]] == 0)  # black beside the 32 pixels
    page.click("#zoom-fit")
    pixels = _shot(page, "rgb_colours_fit", "#noisy")
    for col in (8, 24):
        shown = pixels[size // 2, int((col + 0.5) * size / 32)]
        np.testing.assert_allclose(shown, expected[16, col], atol=1.5)


def _dark_runs(line: np.ndarray, inside: np.ndarray) -> int:
    """How many runs of near-black pixels (the grid lines of the layout test) a line of greys holds
    where it shows the image (``inside``)."""
    dark = np.concatenate([[False], (line < 8) & inside, [False]])
    return int(np.count_nonzero(np.diff(dark.astype(int)) == 1))


def test_one_panel_layout_flips_views_and_keeps_the_shared_view(page, tmp_path):
    """The 1-panel layout shows more of a 1024 x 1024 image at 1:1 than a panel of three (counted by
    a grid of black lines every 64 pixels), Space flips noisy -> denoised -> difference (a noise
    patch's pixels follow the values Python reads), and window, zoom, pan and ROI survive every
    flip and layout switch; the layout is remembered in localStorage."""
    size, step = 1024, 64
    yy, xx = np.mgrid[:size, :size]
    image = (90 + 120 * xx / size + 40 * yy / size).astype(np.uint8)
    image[(xx % step == 0) | (yy % step == 0)] = 0  # black at the window set below, the rest is not
    patch = (slice(448, 576), slice(448, 576))  # around the centre: noise the denoiser smooths
    image[patch] = np.random.default_rng(1).integers(100, 220, (128, 128))
    path = tmp_path / "grid.png"
    Image.fromarray(image).save(path)
    _upload(page, str(path), 0, timeout=120_000)
    assert page.get_attribute("#views", "data-layout") == "three" and page.is_hidden("#view-group")
    noisy = _values(page, 0, "noisy", (size, size)).astype(np.float64)
    denoised = _values(page, 0, "denoised", (size, size)).astype(np.float64)
    assert np.abs(noisy[patch] - denoised[patch]).mean() > 10  # the views differ where the test looks

    def state():
        data = page.evaluate("() => ({...document.getElementById('views').dataset, width: view.width, "
                             "level: view.level, readout: document.getElementById('wl-readout').textContent, "
                             "zoom: document.getElementById('zoom-label').textContent})")
        return {key: data[key] for key in ("scale", "cx", "cy", "width", "level", "readout", "zoom")}

    def panel(view):
        return page.eval_on_selector(f"#{view}", "e => [e.clientHeight, e.clientWidth]")

    # 3 panels at 1:1, a window dragged, an ROI drawn, the view panned
    page.click("#zoom-full")
    box = page.locator("#noisy").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 60, y + 20, steps=3)  # narrower and higher: the lines black, nothing else
    page.mouse.up()
    page.check("input[name=tool][value=roi]")
    page.mouse.move(x - 150, y - 150)  # away from the noise patch
    page.mouse.down()
    page.mouse.move(x - 110, y - 120, steps=3)
    page.mouse.up()
    roi = [page.get_attribute("#roi-caption", f"data-{key}") for key in ("x0", "x1", "y0", "y1")]
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x - 30, y + 20, steps=3)
    page.mouse.up(button="right")
    before = state()
    assert before["zoom"] == "100%" and float(before["cx"]) == pytest.approx(size / 2 + 30)
    scale, cx, cy = float(before["scale"]), float(before["cx"]), float(before["cy"])

    def expected(values, view):
        if view == "difference":
            low, high = page.evaluate("() => current.windows.difference")
            grey = _grey(values, high - low, (high + low) / 2)
        else:
            grey = _grey(values, before["width"], before["level"])
        return _screen_grey(grey, tuple(panel(view)), scale, cx, cy)

    def grid_lines(pixels):
        """The grid's lines across a row and down a column of the noisy panel, checked against Python's."""
        shown, inside = expected(noisy, "noisy")
        row, col = pixels.shape[0] // 4, pixels.shape[1] // 5  # beside the noise patch
        across = _dark_runs(pixels[row, 3:-3, 0], inside[row, 3:-3])
        down = _dark_runs(pixels[40:-3, col, 0], inside[40:-3, col])
        assert (across, down) == (_dark_runs(shown[row, 3:-3], inside[row, 3:-3]),
                                  _dark_runs(shown[40:-3, col], inside[40:-3, col]))
        return across, down

    three = _shot(page, "layout_three_full", "#noisy")
    assert _matches(three, *expected(noisy, "noisy")) > 0.99
    three_size = panel("noisy")
    lines_three = grid_lines(three)
    assert min(lines_three) >= 4, lines_three

    # 1 panel: the same view state, a much larger panel, more of the grid visible
    page.click("#layout-one")
    assert page.get_attribute("#views", "data-layout") == "one" and page.get_attribute("#views", "data-view") == "noisy"
    assert page.is_hidden("#denoised") and page.is_hidden("#difference") and page.is_visible("#view-group")
    assert page.inner_text(".panel:has(#noisy) .view-label") == "noisy (input)"
    assert state() == before
    one_size = panel("noisy")
    assert one_size[1] > 2.5 * three_size[1] and one_size[0] > 1.5 * three_size[0]
    one = _shot(page, "layout_one_noisy", "#noisy")
    _shot(page, "layout_one_page")
    assert one.shape[:2] == tuple(one_size)
    label_free = (slice(40, None), slice(None))  # below the view's caption in the corner
    shown, inside = expected(noisy, "noisy")
    assert _matches(one[label_free], shown[label_free], inside[label_free]) > 0.99
    lines_one = grid_lines(one)
    assert lines_one[0] >= 2.5 * lines_three[0] and lines_one[1] >= 1.5 * lines_three[1], (lines_one, lines_three)
    # the ROI is drawn on the one panel at the same image position
    left = round(one_size[1] / 2 + (int(roi[0]) - cx) * scale)
    middle = round(one_size[0] / 2 + ((int(roi[2]) + int(roi[3])) / 2 - cy) * scale)
    assert any(p[0] > 200 and p[1] > 200 and p[2] < 120 for p in one[middle, left - 1: left + 2])
    assert page.evaluate("() => localStorage.getItem('medden.serve.layout')") == "one"

    # Space: noisy -> denoised -> difference -> noisy; the noise patch shows each view's values
    top, left = round(one_size[0] / 2 + patch[0].start - cy), round(one_size[1] / 2 + patch[1].start - cx)
    centre = (slice(top, top + 128), slice(left, left + 128))  # the noise patch on the screen
    for view, values, label in (("denoised", denoised, "denoised"), ("difference", noisy - denoised, "difference"),
                                ("noisy", noisy, "noisy (input)")):
        page.keyboard.press("Space")
        assert page.get_attribute("#views", "data-view") == view
        assert page.is_visible(f"#{view}") and page.inner_text(f".panel:has(#{view}) .view-label").startswith(label)
        assert state() == before and page.get_attribute("#roi-caption", "data-x0") == roi[0]
        pixels = _shot(page, f"layout_one_{view}", f"#{view}")
        shown, inside = expected(values, view)
        assert _matches(pixels[centre], shown[centre], inside[centre]) > 0.99, view
        assert _matches(pixels[label_free], shown[label_free], inside[label_free]) > 0.99, view
        if view == "denoised":  # not the noisy view's pixels
            noisy_shown = expected(noisy, "denoised")  # noisy values, the shared window, this panel
            assert _matches(pixels[centre], noisy_shown[0][centre], noisy_shown[1][centre]) < 0.5
    page.keyboard.press("Shift+Space")
    assert page.get_attribute("#views", "data-view") == "difference"
    page.keyboard.press("2")
    assert page.get_attribute("#views", "data-view") == "denoised"
    page.click("#view-group button[data-view='noisy']")
    assert page.get_attribute("#views", "data-view") == "noisy"
    assert page.get_attribute("#view-group button[data-view='noisy']", "aria-pressed") == "true"
    page.keyboard.press("Space")  # the focused button is not pressed by Space: the view flips
    assert page.get_attribute("#views", "data-view") == "denoised"

    # back to 3 panels: the same view state, the same pixels as before
    page.click("#layout-three")
    assert page.get_attribute("#views", "data-layout") == "three" and page.is_visible("#noisy")
    assert state() == before
    assert _matches(_shot(page, "layout_three_again", "#noisy"), *expected(noisy, "noisy")) > 0.99
    page.keyboard.press("Space")  # the 3-panel layout leaves it to the page
    assert page.get_attribute("#views", "data-view") == "denoised"

    # in the 1-panel layout Space flips the view, also with a toolbar button focused (not pressed again)
    page.click("#layout-one")
    page.click("#zoom-in")
    page.keyboard.press("Space")
    assert page.get_attribute("#views", "data-view") == "difference"
    assert float(state()["scale"]) == pytest.approx(scale * 1.25)

    # the layout chosen is remembered by this browser
    page.reload()
    assert page.get_attribute("#views", "data-layout") == "one"
    assert page.get_attribute("#layout-one", "aria-pressed") == "true"
