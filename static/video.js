// Video pages. /videos: upload the clip to the API (with upload progress) -> go to its page.
// /videos/<id> while analysing: poll the job's JSON, move the bar, reload when done (the server then
// renders the result), show the error when failed. Without JavaScript the form posts to /videos.
(function () {
  "use strict";

  function uploadPage(form) {
    const input = document.getElementById("file");
    const zone = document.getElementById("dropzone");
    const status = document.getElementById("status");
    const error = document.getElementById("error");
    const bar = document.getElementById("upload-progress");
    const maxBytes = Number(form.dataset.maxBytes);
    let busy = false;

    function showError(message) {
      error.textContent = message;
      error.hidden = false;
      status.textContent = "";
      bar.hidden = true;
      form.classList.remove("busy");
      busy = false;
    }

    function send(file) {
      if (busy || !file) return;
      error.hidden = true;
      if (file.size === 0) return showError("empty file (0 bytes): " + file.name);
      if (maxBytes && file.size > maxBytes) {
        return showError("upload too large: the limit is " + Math.round(maxBytes / 1e6) + " MB per file");
      }
      busy = true;
      form.classList.add("busy");
      status.textContent = "Uploading " + file.name + "…";
      bar.hidden = false;
      const body = new FormData();
      body.append("file", file, file.name);
      body.append("source", form.elements.source.value);
      // XMLHttpRequest, not fetch: it reports upload progress, which matters for a 100 MB clip.
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.api);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = e.loaded / e.total; };
      xhr.onerror = function () { showError("could not reach the server"); };
      xhr.onload = function () {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* a proxy's HTML error page */ }
        if (xhr.status === 202 && data) {
          status.textContent = "Uploaded. Opening the progress page…";
          window.location.assign(data.page_url);
          return;
        }
        showError((data && data.error) || ("upload failed (HTTP " + xhr.status + ")"));
      };
      xhr.send(body);
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
  }

  function progressPage(card) {
    const bar = document.getElementById("job-progress");
    const text = function (id, value) { document.getElementById(id).textContent = value; };
    let failures = 0;

    async function poll() {
      let job;
      try {
        const response = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
        job = await response.json();
        if (!response.ok) throw new Error(job.error || ("HTTP " + response.status));
        failures = 0;
      } catch (e) {
        failures += 1;  // a server restart or a blip: keep trying, say so after a few misses
        if (failures >= 3) text("stage", "Waiting for the server… (" + e.message + ")");
        setTimeout(poll, 3000);
        return;
      }
      card.dataset.status = job.status;
      text("stage", job.stage.charAt(0).toUpperCase() + job.stage.slice(1));
      if (job.total) { bar.max = job.total; bar.value = job.done; }
      text("frames", job.done + " / " + (job.total || "?"));
      text("percent", job.percent + "%");
      text("elapsed", Math.round(job.elapsed_s) + " s");
      text("eta", job.eta_s === null ? "…" : Math.round(job.eta_s) + " s");
      if (job.status === "done") { window.location.reload(); return; }
      if (job.status === "failed") {
        const err = document.getElementById("job-error");
        err.textContent = "The analysis failed: " + job.error;
        err.hidden = false;
        return;
      }
      setTimeout(poll, 1000);
    }
    poll();
  }

  const form = document.getElementById("video-form");
  if (form) uploadPage(form);
  const card = document.getElementById("progress-card");
  if (card) progressPage(card);
})();
