// Upload page: drag-and-drop or pick (static/dropzone.js) -> POST to the API -> go to the result page.
// Without JavaScript the form posts to /upload instead and the server redirects.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");

  window.closetaiDropzone(form, async function (file, body, ui) {
    ui.status("Analysing " + file.name + "…");
    let response;
    try {
      response = await fetch(form.dataset.api, { method: "POST", body: body, headers: { Accept: "application/json" } });
    } catch (e) {
      return ui.fail("could not reach the server: " + e.message);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* a proxy's HTML error page */ }
    if (response.status === 201 && data) {
      ui.status("Done: " + data.detections.length + " items. Opening the result…");
      window.location.assign(data.urls.page);
      return;
    }
    const stored = data && data.already_stored;
    ui.fail((data && data.error) || ("upload failed (HTTP " + response.status + ")"),
            stored ? { url: stored.url, text: "Open the stored " + stored.kind } : null);
  });
})();
