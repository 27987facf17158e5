// Upload page: drag-and-drop or pick -> POST to the API -> go to the result page.
// Without JavaScript the form posts to /upload instead and the server redirects.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const maxBytes = Number(form.dataset.maxBytes);
  let busy = false;

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
    status.textContent = "";
    form.classList.remove("busy");
    busy = false;
  }

  async function send(file) {
    if (busy || !file) return;
    error.hidden = true;
    if (file.size === 0) return showError("empty file (0 bytes): " + file.name);
    if (maxBytes && file.size > maxBytes) {
      return showError("upload too large: the limit is " + Math.round(maxBytes / 1e6) + " MB per file");
    }
    busy = true;
    form.classList.add("busy");
    status.textContent = "Analysing " + file.name + "…";
    const body = new FormData();
    body.append("file", file, file.name);
    body.append("source", form.elements.source.value);
    let response;
    try {
      response = await fetch(form.dataset.api, { method: "POST", body: body, headers: { Accept: "application/json" } });
    } catch (e) {
      return showError("could not reach the server: " + e.message);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* a proxy's HTML error page */ }
    if (response.status === 201 && data) {
      status.textContent = "Done: " + data.detections.length + " items. Opening the result…";
      window.location.assign(data.urls.page);
      return;
    }
    showError((data && data.error) || ("upload failed (HTTP " + response.status + ")"));
  }

  input.addEventListener("change", function () { send(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (e) {
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) send(files[0]);
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); send(input.files[0]); });
})();
