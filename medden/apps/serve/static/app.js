// medden serve: upload one image, show noisy | denoised | difference, offer the downloads.
// Plain JavaScript, no libraries: everything comes from this server.
//
// The server sends each slice's real values (raw float32, in HU for CT), so windowing, zoom,
// pan and ROI statistics happen here. One view state is shared by the three panels (linked
// zoom and pan); the difference panel keeps its own window, symmetric about 0. The 1-panel
// layout shows one of the three views in one large panel with the same shared view state, so
// flipping between views or layouts keeps window, zoom, pan, slice and ROI.
"use strict";

const $ = (id) => document.getElementById(id);
const VIEWS = ["noisy", "denoised", "difference"];
const DOWNLOADS = ["dicom", "nifti", "png"];
const UPLOAD_SHARE = 0.3;    // of the progress bar: the upload; the rest is the server's work
const POLL_MS = 200;         // how often the server's progress is asked for
const WHEEL_STEP = 40;       // wheel delta (pixels) per slice
const CACHE_SLICES = 32;     // slices kept in memory
const ZOOM_STEP = 1.25;
const LAYOUT_KEY = "medden.serve.layout"; // localStorage: the layout chosen last ("three" or "one")
let maxUploadBytes = 0;
let current = null;          // the summary of the shown job
const view = { k: 0, width: 1, level: 0, scale: 1, cx: 0, cy: 0, roi: null, tool: "wl",
               layout: storedLayout(), shown: "noisy" }; // shown: the view the 1-panel layout shows
const cache = new Map();     // slice index -> Promise of {noisy, denoised, difference} Float32Arrays
let shown = null;            // the values of the drawn slice
const offscreen = {};        // view -> canvas of the image's size holding the windowed pixels
let wantedSlice = -1;
let wheelTravel = 0;

function megabytes(bytes) {
  return (bytes / 1048576).toFixed(bytes < 10485760 ? 1 : 0) + " MB";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "";
}

function clearError() {
  $("error").textContent = "";
  $("error").hidden = true;
}

function number(value, digits = 4) {
  const fixed = Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(digits);
  return String(Number(fixed));
}

async function loadBundles() {
  try {
    const answer = await fetch("/api/bundles");
    const info = await answer.json();
    for (const name of info.bundles) {
      $("bundle").add(new Option(name, name, name === info.default, name === info.default));
    }
    maxUploadBytes = info.max_upload_bytes;
    $("limits").textContent = `Upload ${info.accepted}, up to ${megabytes(maxUploadBytes)}. ` +
      "The file is deleted from the server as soon as it is denoised.";
    $("submit").disabled = false;
  } catch (err) {
    showError(`Could not ask the server for its bundles (${err.message}); is it still running?`);
  }
}

// ----------------------------------------------------------------------------- progress

function showProgress(fraction, text) {
  $("progress").hidden = false;
  $("progress-bar").value = fraction;
  $("progress-text").textContent = text;
}

function randomToken() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Ask the server where the upload `token` stands until stop() is called.
function pollProgress(token) {
  let running = true;
  let timer = null;
  const ask = async () => {
    try {
      const answer = await fetch(`/api/progress/${token}`, { cache: "no-store" });
      if (running && answer.ok) {
        const state = await answer.json();
        showProgress(UPLOAD_SHARE + (1 - UPLOAD_SHARE) * state.fraction, `Server: ${state.message}`);
      }
    } catch (err) { /* the answer of the upload itself reports failures */ }
    if (running) { timer = setTimeout(ask, POLL_MS); }
  };
  ask();
  return () => { running = false; clearTimeout(timer); };
}

// POST the form with XMLHttpRequest (fetch reports no upload progress): resolves {status, body}.
function send(form, token) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let stop = () => {};
    xhr.open("POST", "/api/denoise");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        const share = event.loaded / event.total;
        showProgress(UPLOAD_SHARE * share, `Uploading: ${megabytes(event.loaded)} of ${megabytes(event.total)} ` +
          `(${Math.round(100 * share)}%)`);
      }
    });
    xhr.upload.addEventListener("load", () => {
      showProgress(UPLOAD_SHARE, "Uploaded; the server is working on it");
      stop = pollProgress(token);
    });
    xhr.addEventListener("load", () => { stop(); resolve({ status: xhr.status, statusText: xhr.statusText,
                                                           body: xhr.response || {} }); });
    xhr.addEventListener("error", () => { stop(); reject(new Error("network error")); });
    xhr.addEventListener("abort", () => { stop(); reject(new Error("aborted")); });
    xhr.send(form);
  });
}

async function submit(event) {
  event.preventDefault();
  clearError();
  const file = $("file").files[0];
  if (!file) {
    showError("Choose a file first: a DICOM file, a .zip of one DICOM series, a NIfTI file or a PNG.");
    return;
  }
  if (maxUploadBytes && file.size > maxUploadBytes) {
    showError(`The file is ${megabytes(file.size)}, larger than this server's upload limit of ` +
      `${megabytes(maxUploadBytes)}; upload a smaller file or start the server with a larger --max-upload-mb.`);
    return;
  }
  const token = randomToken();
  const form = new FormData();
  form.append("bundle", $("bundle").value);
  form.append("progress", token);
  form.append("file", file, file.name);
  $("submit").disabled = true;
  $("result").hidden = true;
  $("status").textContent = `Uploading and denoising with ${$("bundle").value}\u2026`;
  showProgress(0, "Uploading");
  try {
    const answer = await send(form, token);
    if (answer.status !== 200) {
      const detail = typeof answer.body.detail === "string" ? answer.body.detail : `${answer.status} ${answer.statusText}`;
      showError(`The server refused the file: ${detail}`);
      return;
    }
    showProgress(1, "Done; loading the slices");
    await showResult(answer.body);
  } catch (err) {
    showError(`The upload failed (${err.message}); is the server still running?`);
  } finally {
    $("progress").hidden = true;
    $("submit").disabled = false;
  }
}

// ----------------------------------------------------------------------------- slices

async function fetchValues(k, name) {
  const answer = await fetch(current.values_url.replace("{k}", k).replace("{view}", name));
  if (!answer.ok) { throw new Error(`slice ${k + 1} could not be loaded (${answer.status})`); }
  return new Float32Array(await answer.arrayBuffer());
}

function loadSlice(k) {
  if (!cache.has(k)) {
    const job = current.job;
    const promise = Promise.all([fetchValues(k, "noisy"), fetchValues(k, "denoised")]).then(([noisy, denoised]) => {
      const difference = new Float32Array(noisy.length);
      for (let i = 0; i < noisy.length; i++) { difference[i] = noisy[i] - denoised[i]; }
      return { job, noisy, denoised, difference };
    });
    promise.catch(() => cache.delete(k));
    cache.set(k, promise);
    while (cache.size > CACHE_SLICES) { cache.delete(cache.keys().next().value); }
  }
  return cache.get(k);
}

async function setSlice(k) {
  if (!current) { return; }
  k = Math.max(0, Math.min(current.slices - 1, Math.round(k)));
  wantedSlice = k;
  $("slice").value = String(k);
  $("slice-label").textContent = `${k + 1} / ${current.slices}`;
  try {
    const values = await loadSlice(k);
    if (k !== wantedSlice || values.job !== current.job) { return; } // a later slice was asked for meanwhile
    shown = values;
    view.k = k;
    renderAll();
    $("views").dataset.slice = String(k);
    for (const next of [k + 1, k - 1]) { // the neighbours, so that scrolling on does not wait
      if (next >= 0 && next < current.slices) { loadSlice(next).catch(() => {}); }
    }
  } catch (err) {
    showError(err.message);
  }
}

// ----------------------------------------------------------------------------- drawing

// Fill `canvas` (the image's size) with `values` mapped to grey: low black, high white.
function windowInto(canvas, values, low, high) {
  const { rows, cols } = current.info;
  const channels = current.channels;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  const pixels = image.data;
  const scale = 255 / Math.max(high - low, 1e-12);
  for (let p = 0; p < rows * cols; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (values[p * channels + (channels === 3 ? c : 0)] - low) * scale;
      pixels[4 * p + c] = v <= 0 ? 0 : v >= 255 ? 255 : v;
    }
    pixels[4 * p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function renderAll() {
  if (!shown) { return; }
  const low = view.level - view.width / 2;
  windowInto(offscreen.noisy, shown.noisy, low, low + view.width);
  windowInto(offscreen.denoised, shown.denoised, low, low + view.width);
  const [dlow, dhigh] = current.windows.difference;
  windowInto(offscreen.difference, shown.difference, dlow, dhigh);
  drawAll();
  updateRoi();
}

function canvasSize(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  return { w, h, dpr };
}

function visibleViews() {
  return view.layout === "one" ? [view.shown] : VIEWS;
}

function drawAll() {
  if (!shown) { return; }
  const { rows, cols } = current.info;
  for (const name of visibleViews()) {
    const canvas = $(name);
    const { w, h, dpr } = canvasSize(canvas);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    ctx.imageSmoothingEnabled = false; // each image pixel a sharp square when zoomed in
    const x0 = w / 2 - view.cx * view.scale, y0 = h / 2 - view.cy * view.scale;
    ctx.drawImage(offscreen[name], x0, y0, cols * view.scale, rows * view.scale);
    if (view.roi) {
      const r = view.roi;
      ctx.strokeStyle = "#ffeb3b";
      ctx.lineWidth = 2; // at least one pixel fully covered: the box is visible on any grey
      ctx.strokeRect(x0 + r.x0 * view.scale, y0 + r.y0 * view.scale, (r.x1 - r.x0 + 1) * view.scale,
                     (r.y1 - r.y0 + 1) * view.scale);
    }
  }
  $("zoom-label").textContent = `${Math.round(100 * view.scale * (window.devicePixelRatio || 1))}%`;
  const views = $("views").dataset; // the shared view, for scripts and tests: scale and the image point at the centre
  views.scale = view.scale; views.cx = view.cx; views.cy = view.cy;
  const units = current.info.units ? ` ${current.info.units}` : "";
  $("wl-readout").textContent = `W ${number(view.width)} L ${number(view.level)}${units}`;
}

function setWindow(width, level) {
  view.width = Math.max(width, 1e-6);
  view.level = level;
  renderAll();
}

// ----------------------------------------------------------------------------- zoom and pan

function panelSize() {
  const canvas = $(visibleViews()[0]);
  return { w: canvas.clientWidth, h: canvas.clientHeight };
}

function zoomFit() {
  const { rows, cols } = current.info;
  const { w, h } = panelSize();
  view.scale = Math.min(w / cols, h / rows);
  view.cx = cols / 2;
  view.cy = rows / 2;
  drawAll();
}

// One image pixel per screen pixel (1:1) when the whole image fits the panel at that zoom, else Fit.
function zoomDefault() {
  const { rows, cols } = current.info;
  const { w, h } = panelSize();
  const full = 1 / (window.devicePixelRatio || 1);
  if (cols * full > w || rows * full > h) { zoomFit(); return; }
  view.scale = full;
  view.cx = cols / 2;
  view.cy = rows / 2;
  drawAll();
}

// Zoom by `factor` keeping the image point under panel position (x, y) (CSS pixels) in place.
function zoomAt(factor, x, y) {
  const { w, h } = panelSize();
  if (x === undefined) { x = w / 2; y = h / 2; }
  const ix = (x - w / 2) / view.scale + view.cx, iy = (y - h / 2) / view.scale + view.cy;
  view.scale = Math.max(0.02, Math.min(64, view.scale * factor));
  view.cx = ix - (x - w / 2) / view.scale;
  view.cy = iy - (y - h / 2) / view.scale;
  drawAll();
}

function imagePoint(canvas, event) {
  const box = canvas.getBoundingClientRect();
  const x = event.clientX - box.left, y = event.clientY - box.top;
  return { x: (x - box.width / 2) / view.scale + view.cx, y: (y - box.height / 2) / view.scale + view.cy };
}

// ----------------------------------------------------------------------------- layout

function storedLayout() {
  try { return localStorage.getItem(LAYOUT_KEY) === "one" ? "one" : "three"; } catch (err) { return "three"; }
}

// Show the layout and view of `view`; the shared zoom, pan, window, slice and ROI stay as they are.
function applyLayout() {
  const views = $("views");
  views.classList.toggle("one", view.layout === "one");
  views.dataset.layout = view.layout;
  views.dataset.view = view.shown;
  for (const name of VIEWS) { $(name).closest("figure").classList.toggle("active", name === view.shown); }
  for (const button of document.querySelectorAll("#layout-group button")) {
    button.setAttribute("aria-pressed", String(button.dataset.layout === view.layout));
  }
  for (const button of document.querySelectorAll("#view-group button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view.shown));
  }
  $("view-group").hidden = view.layout !== "one";
  drawAll();
}

function setLayout(layout) {
  view.layout = layout;
  try { localStorage.setItem(LAYOUT_KEY, layout); } catch (err) { /* private mode: not remembered */ }
  applyLayout();
  if (layout === "one") { $("toolbar").scrollIntoView({ block: "start" }); } // the tools and the panel in view
}

function showView(name) {
  view.shown = name;
  applyLayout();
}

// ----------------------------------------------------------------------------- ROI

function clampPixel(p) {
  const { rows, cols } = current.info;
  return { x: Math.max(0, Math.min(cols - 1, Math.floor(p.x))), y: Math.max(0, Math.min(rows - 1, Math.floor(p.y))) };
}

// Mean and population SD of `values` in the ROI (all channels), from the data, not the screen.
function roiStats(values, r) {
  const { cols } = current.info;
  const channels = current.channels;
  let n = 0, sum = 0, sq = 0;
  for (let y = r.y0; y <= r.y1; y++) {
    for (let x = r.x0; x <= r.x1; x++) {
      for (let c = 0; c < channels; c++) {
        const v = values[(y * cols + x) * channels + c];
        n++; sum += v; sq += v * v;
      }
    }
  }
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(sq / n - mean * mean, 0)) };
}

function updateRoi() {
  const r = view.roi;
  $("roi").hidden = !r || !shown;
  if (!r || !shown) { return; }
  const units = current.info.units ? ` ${current.info.units}` : "";
  const count = (r.x1 - r.x0 + 1) * (r.y1 - r.y0 + 1);
  $("roi-caption").textContent = `ROI columns ${r.x0}\u2013${r.x1}, rows ${r.y0}\u2013${r.y1} ` +
    `(${count} pixels), slice ${view.k + 1}`;
  const box = $("roi-caption");
  box.dataset.x0 = r.x0; box.dataset.x1 = r.x1; box.dataset.y0 = r.y0; box.dataset.y1 = r.y1; box.dataset.slice = view.k;
  for (const name of VIEWS) {
    const { mean, std } = roiStats(shown[name], r);
    const row = $(`roi-${name}`);
    row.dataset.mean = mean; row.dataset.std = std;
    row.querySelector(".mean").textContent = number(mean) + units;
    row.querySelector(".std").textContent = number(std) + units;
  }
}

// ----------------------------------------------------------------------------- mouse and keys

function onPointerDown(event) {
  if (!shown) { return; }
  const canvas = event.currentTarget;
  canvas.setPointerCapture(event.pointerId);
  if (document.activeElement instanceof HTMLElement) { document.activeElement.blur(); } // keys scroll slices again
  const mode = event.shiftKey || event.button === 1 || event.button === 2 ? "pan" : view.tool;
  const start = { x: event.clientX, y: event.clientY, width: view.width, level: view.level, cx: view.cx, cy: view.cy,
                  pixel: clampPixel(imagePoint(canvas, event)) };
  const move = (e) => {
    const dx = e.clientX - start.x, dy = e.clientY - start.y;
    if (mode === "wl") {
      setWindow(start.width * Math.exp(dx / 200), start.level + dy * start.width / 200);
    } else if (mode === "pan") {
      view.cx = start.cx - dx / view.scale;
      view.cy = start.cy - dy / view.scale;
      drawAll();
    } else {
      const p = clampPixel(imagePoint(canvas, e));
      view.roi = { x0: Math.min(p.x, start.pixel.x), x1: Math.max(p.x, start.pixel.x),
                   y0: Math.min(p.y, start.pixel.y), y1: Math.max(p.y, start.pixel.y) };
      drawAll();
      updateRoi();
    }
  };
  const up = () => {
    canvas.removeEventListener("pointermove", move);
    canvas.removeEventListener("pointerup", up);
    canvas.removeEventListener("pointercancel", up);
  };
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  event.preventDefault();
}

function onWheel(event) {
  if (!shown) { return; }
  event.preventDefault();
  if (event.ctrlKey) {
    const box = event.currentTarget.getBoundingClientRect();
    zoomAt(Math.exp(-event.deltaY / 300), event.clientX - box.left, event.clientY - box.top);
    return;
  }
  wheelTravel += event.deltaY;
  if (Math.abs(wheelTravel) >= WHEEL_STEP) {
    setSlice(wantedSlice + Math.sign(wheelTravel));
    wheelTravel = 0;
  }
}

function onKey(event) {
  if (!current || $("result").hidden || event.altKey || event.ctrlKey || event.metaKey) { return; }
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) {
    return; // the slider and the form handle their own keys
  }
  const page = Math.max(1, Math.round(current.slices / 10));
  const steps = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: page, PageUp: -page };
  if (event.key in steps) {
    setSlice(wantedSlice + steps[event.key]);
  } else if (event.key === "Home" || event.key === "End") {
    setSlice(event.key === "Home" ? 0 : current.slices - 1);
  } else if (view.layout === "one" && event.key === " ") { // also keeps a focused button from being pressed
    showView(VIEWS[(VIEWS.indexOf(view.shown) + (event.shiftKey ? VIEWS.length - 1 : 1)) % VIEWS.length]);
  } else if (view.layout === "one" && ["1", "2", "3"].includes(event.key)) {
    showView(VIEWS[Number(event.key) - 1]);
  } else {
    return;
  }
  event.preventDefault();
}

// ----------------------------------------------------------------------------- a new result

function showPresets(info) {
  const buttons = [];
  const add = (label, width, level) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.preset = label;
    button.title = `W ${width} L ${level}`;
    button.addEventListener("click", () => setWindow(width, level));
    buttons.push(button);
  };
  for (const [name, [width, level]] of Object.entries(info.presets)) { add(name, width, level); }
  add("auto", info.auto.width, info.auto.level);
  if (info.window.source === "DICOM window tags") { add("DICOM", info.window.width, info.window.level); }
  $("presets").replaceChildren("Window:", ...buttons);
}

function describe(info, summary) {
  const parts = [info.modality, `${info.cols} \u00d7 ${info.rows} pixels`];
  if (summary.slices > 1) { parts.push(`${summary.slices} slices`); }
  if (info.spacing) {
    const [across, down, between] = info.spacing.map((v) => number(v, 3));
    parts.push(`pixel spacing ${across} \u00d7 ${down} mm (across \u00d7 down)` +
               (summary.slices > 1 ? `, ${between} mm between slices` : ""));
  } else {
    parts.push("pixel spacing not recorded");
  }
  parts.push(info.units ? `values in ${info.units}` : "values in the file's units");
  parts.push(`starting window: ${info.window.source}`);
  return parts.join(" \u00b7 ");
}

async function showResult(summary) {
  current = summary;
  cache.clear();
  shown = null;
  const { info } = summary;
  for (const name of VIEWS) {
    offscreen[name] = document.createElement("canvas");
    offscreen[name].width = info.cols;
    offscreen[name].height = info.rows;
  }
  view.width = info.window.width;
  view.level = info.window.level;
  view.roi = null;
  $("slice").max = String(summary.slices - 1);
  $("slice-control").hidden = summary.slices < 2;
  for (const fmt of DOWNLOADS) {
    const link = $(`download-${fmt}`);
    const url = summary.downloads[fmt];
    link.hidden = !url;
    if (url) { link.href = url; } else { link.removeAttribute("href"); }
  }
  const half = summary.windows.difference[1];
  $("windows").textContent = `Difference window: \u00b1${number(half, 3)}${info.units ? " " + info.units : ""} ` +
    "(mid-grey = no change).";
  $("info").textContent = describe(info, summary);
  for (const side of ["top", "bottom", "left", "right"]) {
    for (const label of document.querySelectorAll(`.orient.${side}`)) {
      label.textContent = info.orientation ? info.orientation[side] : "";
    }
  }
  showPresets(info);
  $("notes").replaceChildren(...summary.notes.map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
  $("result").hidden = false;
  delete $("views").dataset.slice;
  applyLayout();
  zoomDefault();
  await setSlice(Math.floor(summary.slices / 2));
  zoomDefault();
  const shape = summary.shape.slice(1).join(" \u00d7 ");
  $("status").textContent = `Denoised a ${summary.kind.toUpperCase()} image (${shape}) with ${summary.bundle} ` +
    `(${summary.backend}) in ${summary.seconds.toFixed(1)} s.`;
}

$("form").addEventListener("submit", submit);
$("slice").addEventListener("input", () => setSlice(Number($("slice").value)));
for (const name of VIEWS) {
  const canvas = $(name);
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
}
for (const radio of document.querySelectorAll("input[name=tool]")) {
  radio.addEventListener("change", () => { view.tool = radio.value; });
}
for (const button of document.querySelectorAll("#layout-group button")) {
  button.addEventListener("click", () => setLayout(button.dataset.layout));
}
for (const button of document.querySelectorAll("#view-group button")) {
  button.addEventListener("click", () => showView(button.dataset.view));
}
$("zoom-fit").addEventListener("click", zoomFit);
$("zoom-full").addEventListener("click", () => { zoomAt(1 / ((window.devicePixelRatio || 1) * view.scale)); });
$("zoom-in").addEventListener("click", () => zoomAt(ZOOM_STEP));
$("zoom-out").addEventListener("click", () => zoomAt(1 / ZOOM_STEP));
document.addEventListener("keydown", onKey);
window.addEventListener("resize", drawAll);
applyLayout();
loadBundles();
