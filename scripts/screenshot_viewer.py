"""Make the README's picture of the web viewer: ``docs/images/viewer.png``.

A real head CT (pydicom's ``693_UNCR.dcm``, 512 x 512, from the CQ500 set, installed with the
``samples`` extra) gets simulated low-dose noise (:class:`medden.transforms.RandCTNoiseFromNPS`:
white noise shaped by the filtered back-projection noise power spectrum and scaled by the
attenuation along the rays, seeded), is written back as a DICOM file, uploaded to ``medden
serve`` (the default bundle) in headless Chromium, shown in the 3-panel layout at Fit in the
soft-tissue window with an ROI in the brain, and the page is saved as a 256-colour PNG (the
greys of a CT fit in 256 levels).

Run: ``python scripts/screenshot_viewer.py [--out docs/images/viewer.png] [--i0 100000]``. Needs
the ``serve`` and ``samples`` extras, Playwright's Python package and a Chromium
(``chromium`` on the PATH, or ``--chromium PATH``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 400_000


def noisy_head_ct(target: Path, i0: float, seed: int) -> float:
    """Write ``693_UNCR.dcm`` with simulated low-dose noise to ``target``; return the noise SD added (HU)."""
    import pydicom
    import torch
    from pydicom.data import get_testdata_file

    from medden.transforms import RandCTNoiseFromNPS

    source = get_testdata_file("693_UNCR.dcm")
    if source is None:
        raise SystemExit("693_UNCR.dcm comes with pydicom-data; install it with: pip install -e \".[samples]\"")
    ds = pydicom.dcmread(source)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    hu = ds.pixel_array.astype(np.float32) * slope + intercept  # (rows, cols)
    noise = RandCTNoiseFromNPS(i0_range=(i0, i0), pixel_mm=float(ds.PixelSpacing[1]))
    noise.set_random_state(seed)
    noisy = np.asarray(noise(torch.from_numpy(np.ascontiguousarray(hu.T[None])))[0]).T  # (1, H, W): H along a row
    info = np.iinfo(ds.pixel_array.dtype)
    stored = np.clip(np.round((noisy - intercept) / slope), info.min, info.max).astype(ds.pixel_array.dtype)
    ds.PixelData = stored.tobytes()
    ds.PatientName, ds.PatientID = "Anonymous", "none"  # the viewer never shows them; the file need not hold them
    ds.save_as(target)
    return float(np.std(noisy - hu))


def capture(url: str, dicom: Path, out: Path, chromium: str) -> None:
    """Upload ``dicom``, set the soft-tissue window, draw an ROI, save the page to ``out``."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector("#bundle option", state="attached")
        page.set_input_files("#file", str(dicom))
        page.click("#submit")
        page.wait_for_function("() => document.getElementById('views').dataset.slice === '0'", timeout=300_000)
        page.click("#layout-three")  # the README shows the three views side by side, whatever the default
        page.click("#zoom-fit")  # the whole 512 x 512 image in each panel
        page.click("#presets button[data-preset='soft tissue']")
        page.check("input[name=tool][value=roi]")
        box = page.locator("#noisy").bounding_box()
        page.mouse.move(box["x"] + 0.40 * box["width"], box["y"] + 0.45 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.50 * box["width"], box["y"] + 0.53 * box["height"], steps=4)
        page.mouse.up()
        png = out.with_suffix(".full.png")
        page.locator("main").screenshot(path=png)
        browser.close()
    with Image.open(png) as image:
        image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    png.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "viewer.png")
    parser.add_argument("--i0", type=float, default=1e5, help="incident photons per detector bin (lower: noisier)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        parser.error("no Chromium found; install it (apt-get install chromium) or pass --chromium PATH")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dicom = Path(tmp) / "noisy_head_ct.dcm"
        sd = noisy_head_ct(dicom, args.i0, args.seed)
        print(f"added low-dose CT noise at i0={args.i0:g}: SD {sd:.1f} HU")
        from medden.apps.serve import create_app, serving

        with serving(create_app(device="cpu", preload=True)) as url:
            capture(url, dicom, args.out, args.chromium)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1000:.0f} KB)")
    if size > MAX_BYTES:
        raise SystemExit(f"{args.out} is {size} bytes, more than the README's budget of {MAX_BYTES}")


if __name__ == "__main__":
    main()
