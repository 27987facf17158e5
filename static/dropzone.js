// Shared by the photo and video upload pages: drag-and-drop or pick one file, check it on the client
// (empty, over the size limit), keep one upload at a time, show errors. The page supplies `upload`,
// which sends the file and calls ui.fail(message) when it goes wrong.
window.closetaiDropzone = function (form, upload) {
  "use strict";
  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const maxBytes = Number(form.dataset.maxBytes);
  let busy = false;

  const ui = {
    status: function (text) { status.textContent = text; },
    // link: {url, text} shown after the message (an upload already stored links to it).
    fail: function (message, link) {
      error.textContent = message;
      if (link && link.url) {
        const a = document.createElement("a");
        a.href = link.url;
        a.textContent = link.text;
        a.id = "already-stored";
        error.append(" ", a);
      }
      error.hidden = false;
      status.textContent = "";
      form.classList.remove("busy");
      busy = false;
      if (ui.onFail) ui.onFail();
    },
    onFail: null,
  };

  function send(file) {
    if (busy || !file) return;
    error.hidden = true;
    if (file.size === 0) return ui.fail("empty file (0 bytes): " + file.name);
    if (maxBytes && file.size > maxBytes) {
      return ui.fail("upload too large: the limit is " + Math.round(maxBytes / 1e6) + " MB per file");
    }
    busy = true;
    form.classList.add("busy");
    const body = new FormData();
    body.append("file", file, file.name);
    body.append("source", form.elements.source.value);
    if (form.elements.store_again && form.elements.store_again.checked) body.append("store_again", "1");
    upload(file, body, ui);
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
  return ui;
};
