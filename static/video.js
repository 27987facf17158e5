// Video pages. /videos: upload the clip to the API (with upload progress) -> go to its page.
// /videos/<id> while analysing: poll the job's JSON, move the bar, reload when done (the server then
// renders the result), show the error when failed. Without JavaScript the form posts to /videos.
(function () {
  "use strict";

  function uploadPage(form) {
    const bar = document.getElementById("upload-progress");
    const ui = window.closetaiDropzone(form, function (file, body, ui) {
      ui.status("Uploading " + file.name + "…");
      bar.hidden = false;
      // XMLHttpRequest, not fetch: it reports upload progress, which matters for a 100 MB clip.
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.api);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = e.loaded / e.total; };
      xhr.onerror = function () { ui.fail("could not reach the server"); };
      xhr.onload = function () {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* a proxy's HTML error page */ }
        if (xhr.status === 202 && data) {
          ui.status("Uploaded. Opening the progress page…");
          window.location.assign(data.page_url);
          return;
        }
        const stored = data && data.already_stored;
        ui.fail((data && data.error) || ("upload failed (HTTP " + xhr.status + ")"),
                stored ? { url: stored.url, text: "Open the stored clip" } : null);
      };
      xhr.send(body);
    });
    ui.onFail = function () { bar.hidden = true; };
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
