// Similar items: on a photo's result page, "Similar items" under a garment shows a grid of the nearest
// stored garments (GET /api/v1/items/<id>/similar); on /search, an uploaded photo's garments are listed
// and clicking one shows its matches (POST /api/v1/search). Everything is built with DOM calls (no HTML
// strings), so file names and labels can never inject markup.
(function () {
  "use strict";
  const grid = document.getElementById("similar-grid");
  const status = document.getElementById("similar-status");
  const forLabel = document.getElementById("similar-for");
  const sameClass = document.getElementById("same-class");
  if (!grid) return;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A shipped match scale gives `match` (0-100, what a person reads: see match_meaning); without one the
  // whole-vector cosine is shown as before.
  function score(r, meaning) {
    if (r.match === undefined) return el("span", "similarity", Math.max(0, Math.round(r.similarity * 100)) + "% similar");
    const s = el("span", "similarity", Math.round(r.match) + "% match");
    if (meaning) s.title = meaning;
    return s;
  }

  function render(results, meaning) {
    grid.replaceChildren();
    results.forEach(function (r) {
      const li = el("li", "similar-item");
      const a = el("a");
      a.href = r.url;
      a.title = r.image + (r.source ? " · " + r.source : "");
      if (r.crop) {
        const img = el("img");
        img.src = r.crop; img.alt = r.label; img.loading = "lazy";
        a.appendChild(img);
      }
      const caption = el("span", "similar-caption");
      caption.appendChild(el("b", "label", r.label));
      caption.appendChild(score(r, meaning));
      caption.appendChild(el("span", "muted small", (r.kind === "video" ? "clip" : "photo") + " #" + r.analysis_id));
      a.appendChild(caption);
      li.appendChild(a);
      grid.appendChild(li);
    });
    status.textContent = results.length ? "" : "No similar garment stored yet.";
  }

  async function json(response) {
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) throw new Error((body && body.error) || "HTTP " + response.status);
    return body;
  }

  // ---- result page -------------------------------------------------------------------------------------
  const panel = document.getElementById("similar");
  if (panel && panel.dataset.items) {
    let current = null, loads = 0;
    async function show(itemId, label) {
      current = { itemId: itemId, label: label };
      panel.hidden = false;
      forLabel.textContent = label;
      status.textContent = "Looking…";
      try {
        const body = await json(await fetch("/api/v1/items/" + itemId + "/similar?k=12&same_class=" +
                                             (sameClass.checked ? "1" : "0")));
        render(body.results, body.match_meaning);
        document.body.dataset.similarReady = String(++loads);  // the browser test waits for this
      } catch (e) {
        grid.replaceChildren();
        status.textContent = "Similar items unavailable: " + e.message;
      }
    }
    sameClass.addEventListener("change", function () { if (current) show(current.itemId, current.label); });
    // Photo result page: rows "#items .item" keyed by data-index; video page: "#tracks .track" by data-track.
    const rows = panel.dataset.rows || "#items .item";
    const key = panel.dataset.key || "index";
    fetch(panel.dataset.items).then(json).then(function (ids) {
      document.querySelectorAll(rows).forEach(function (row) {
        const itemId = (key === "track" ? ids.tracks : ids.detections)[row.dataset[key]];
        const button = row.querySelector(".similar-button");
        if (itemId === undefined || !button) return;
        button.hidden = false;
        button.addEventListener("click", function () {
          show(itemId, row.querySelector(".label").textContent);
          // below the photo and the list, the panel opened out of sight (y = 1,174 in a 900 px window)
          panel.scrollIntoView({ behavior: "smooth", block: "start" });
        });
      });
      // the buttons made every row taller: the garment a #item-N link points at has moved
      if (window.closetaiShowTarget) window.closetaiShowTarget();
    }).catch(function () { /* no embeddings: the buttons stay hidden */ });
  }

  // A similar clip links to its best view as #t=<seconds>: start the video there.
  const video = document.getElementById("annotated");
  const at = /#t=([0-9.]+)/.exec(window.location.hash);
  if (video && at) {
    const seek = function () { video.currentTime = Math.min(Number(at[1]), video.duration || Number(at[1])); };
    if (video.readyState >= 1) seek(); else video.addEventListener("loadedmetadata", seek, { once: true });
  }

  // ---- search by upload --------------------------------------------------------------------------------
  // The photo is picked or dropped on the dashed box; the answer carries a preview of it and a crop of each
  // garment (previews=1, JPEG data URLs made on the server, so HEIC shows too).
  const form = document.getElementById("search-form");
  if (form) {
    const input = document.getElementById("search-file");
    const zone = document.getElementById("search-dropzone");
    const error = document.getElementById("search-error");
    const result = document.getElementById("search-result");
    const list = document.getElementById("search-garments");
    const photo = document.getElementById("search-photo");
    let chosen = 0, file = null, meaning = undefined;

    function choose(i, q) {
      chosen = i;
      forLabel.textContent = q.label;
      Array.from(list.children).forEach(function (li, k) { li.classList.toggle("chosen", k === i); });
      render(q.results, meaning);
    }

    async function search() {
      if (!file) return;
      const data = new FormData();
      data.append("file", file, file.name);
      data.append("k", "12");
      data.append("same_class", sameClass.checked ? "1" : "0");
      data.append("previews", "1");
      status.textContent = "Analysing your photo…";
      error.hidden = true;
      try {
        const body = await json(await fetch(form.dataset.api, { method: "POST", body: data }));
        meaning = body.match_meaning;
        status.textContent = "";
        result.hidden = false;
        photo.src = body.preview;
        photo.hidden = false;
        list.replaceChildren();
        if (!body.queries.length) { status.textContent = "No garment found in this photo."; grid.replaceChildren(); return; }
        chosen = Math.min(chosen, body.queries.length - 1);
        body.queries.forEach(function (q, i) {
          const li = el("li", "item");
          const img = el("img", "crop");
          img.src = q.crop; img.alt = q.label;
          li.appendChild(img);
          const button = el("button", "link", q.label + " " + Math.round(q.confidence * 100) + "%");
          button.type = "button";
          li.appendChild(button);
          li.addEventListener("click", function () { choose(i, q); });
          list.appendChild(li);
        });
        choose(chosen, body.queries[chosen]);
        document.body.dataset.searchReady = String(Number(document.body.dataset.searchReady || 0) + 1);
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
        status.textContent = "";
      }
    }
    function pick(f) { if (f) { file = f; chosen = 0; search(); } }
    input.addEventListener("change", function () { pick(input.files[0]); });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      const files = e.dataTransfer && e.dataTransfer.files;
      if (files && files.length) pick(files[0]);
    });
    form.addEventListener("submit", function (e) { e.preventDefault(); search(); });
    sameClass.addEventListener("change", search);
  }
})();
