// medden serve: upload one image, show noisy | denoised | difference, offer the downloads.
// Plain JavaScript, no libraries: everything comes from this server.
"use strict";

const $ = (id) => document.getElementById(id);
const VIEWS = ["noisy", "denoised", "difference"];
const DOWNLOADS = ["dicom", "nifti", "png"];
let maxUploadBytes = 0;
let current = null; // the summary of the shown job

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

async function loadBundles() {
  try {
    const answer = await fetch("/api/bundles");
    const info = await answer.json();
    for (const name of info.bundles) {
      const option = new Option(name, name, name === info.default, name === info.default);
      $("bundle").add(option);
    }
    maxUploadBytes = info.max_upload_bytes;
    $("limits").textContent = `Upload ${info.accepted}, up to ${megabytes(maxUploadBytes)}. ` +
      "The file is deleted from the server as soon as it is denoised.";
    $("submit").disabled = false;
  } catch (err) {
    showError(`Could not ask the server for its bundles (${err.message}); is it still running?`);
  }
}

function showSlice(k) {
  for (const view of VIEWS) {
    $(view).src = current.slice_url.replace("{k}", k).replace("{view}", view);
  }
  $("slice-label").textContent = `${k + 1} / ${current.slices}`;
}

function showResult(summary) {
  current = summary;
  const middle = Math.floor(summary.slices / 2);
  $("slice").max = String(summary.slices - 1);
  $("slice").value = String(middle);
  $("slice-control").hidden = summary.slices < 2;
  for (const fmt of DOWNLOADS) {
    const link = $(`download-${fmt}`);
    const url = summary.downloads[fmt];
    link.hidden = !url;
    if (url) { link.href = url; } else { link.removeAttribute("href"); }
  }
  const [low, high] = summary.windows.image;
  const half = summary.windows.difference[1];
  $("windows").textContent = `Grey window of noisy and denoised: ${low.toPrecision(4)} to ${high.toPrecision(4)}; ` +
    `difference: \u00b1${half.toPrecision(3)} (mid-grey = no change).`;
  $("notes").replaceChildren(...summary.notes.map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
  showSlice(middle);
  $("result").hidden = false;
  const shape = summary.shape.slice(1).join(" \u00d7 ");
  $("status").textContent = `Denoised a ${summary.kind.toUpperCase()} image (${shape}) with ${summary.bundle} (${summary.backend}) ` +
    `in ${summary.seconds.toFixed(1)} s.`;
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
  const form = new FormData();
  form.append("bundle", $("bundle").value);
  form.append("file", file, file.name);
  $("submit").disabled = true;
  $("result").hidden = true;
  $("status").textContent = `Uploading and denoising with ${$("bundle").value}\u2026`;
  try {
    const answer = await fetch("/api/denoise", { method: "POST", body: form });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      const detail = typeof body.detail === "string" ? body.detail : `${answer.status} ${answer.statusText}`;
      showError(`The server refused the file: ${detail}`);
      return;
    }
    showResult(body);
  } catch (err) {
    showError(`The upload failed (${err.message}); is the server still running?`);
  } finally {
    $("submit").disabled = false;
  }
}

$("form").addEventListener("submit", submit);
$("slice").addEventListener("input", () => showSlice(Number($("slice").value)));
loadBundles();
