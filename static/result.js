// Result page: draws masks, boxes and labels from the analysis JSON on a canvas over the photo, so the
// mask toggle and the confidence slider work without another request.
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("analysis-data").textContent);
  const analysis = page.analysis;
  const colours = page.colours;
  const canvas = document.getElementById("overlay");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const showMasks = document.getElementById("show-masks");
  const showBoxes = document.getElementById("show-boxes");
  const slider = document.getElementById("min-score");
  const sliderValue = document.getElementById("min-score-value");
  const shownCount = document.getElementById("shown-count");
  const rows = Array.from(document.querySelectorAll("#items .item"));
  const annotatedLink = document.getElementById("annotated-link");
  const noneShown = document.getElementById("none-shown");
  annotatedLink.dataset.base = annotatedLink.getAttribute("href");
  let highlight = -1;

  // COCO compressed RLE string -> run lengths (pycocotools' rleFrString). Runs alternate 0s and 1s,
  // starting with 0s, over pixels in column-major order.
  function rleCounts(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = 1;
      while (more) {
        const c = s.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++; k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  function hexRgb(hex) {
    const n = parseInt((hex || "#888888").slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  const dets = analysis.detections.map(function (d) {
    return { d: d, runs: d.mask ? rleCounts(d.mask.counts) : null, rgb: hexRgb(colours[d.label]) };
  });

  // One offscreen layer for all masks: painted per pixel, then drawn semi-transparent in one go.
  const layer = document.createElement("canvas");
  layer.width = W; layer.height = H;
  const lctx = layer.getContext("2d");

  function paintMasks(visible) {
    const img = lctx.createImageData(W, H);
    const px = new Uint32Array(img.data.buffer);
    const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    visible.forEach(function (item) {
      if (!item.runs) return;
      const [r, g, b] = item.rgb;
      const a = item.index === highlight ? 255 : 200;
      const value = little ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
      let pos = 0;
      for (let i = 0; i < item.runs.length; i++) {
        const n = item.runs[i];
        if (i % 2 === 1) {
          for (let j = pos; j < pos + n; j++) {
            const x = (j / H) | 0, y = j - x * H;
            px[y * W + x] = value;
          }
        }
        pos += n;
      }
    });
    lctx.putImageData(img, 0, 0);
  }

  function draw() {
    const min = Number(slider.value);
    sliderValue.textContent = min.toFixed(2);
    const visible = [];
    dets.forEach(function (item, index) {
      item.index = index;
      const on = item.d.score >= min;
      if (on) visible.push(item);
      if (rows[index]) rows[index].hidden = !on;
    });
    shownCount.textContent = String(visible.length);
    if (noneShown) {
      noneShown.hidden = visible.length > 0;
      document.getElementById("none-shown-score").textContent = min.toFixed(2);
    }
    // the PNG download draws what the page shows
    annotatedLink.href = annotatedLink.dataset.base + "?min_score=" + min.toFixed(2) + "&masks=" +
      (showMasks.checked ? "1" : "0") + "&boxes=" + (showBoxes.checked ? "1" : "0");
    ctx.clearRect(0, 0, W, H);
    if (showMasks.checked) {
      paintMasks(visible);
      ctx.globalAlpha = 0.5;
      ctx.drawImage(layer, 0, 0);
      ctx.globalAlpha = 1;
    }
    const placed = [];
    if (showBoxes.checked) {
      // The canvas is scaled to the displayed photo; keep lines and text a constant on-screen size.
      const scale = W / Math.max(1, canvas.clientWidth || W);
      ctx.font = "600 " + Math.round(13 * scale) + "px system-ui, sans-serif";
      ctx.textBaseline = "top";
      visible.forEach(function (item) {
        const [x1, y1, x2, y2] = item.d.box;
        ctx.strokeStyle = colours[item.d.label] || "#888888";
        ctx.lineWidth = (item.index === highlight ? 4 : 2) * scale;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      });
      // Labels after all boxes, most confident first, each where it overlaps no other label (on a phone
      // a crowd of 13 px labels on a 350 px photo piled up). One that finds no free place is left out:
      // the list beside the photo names every garment.
      visible.slice().sort(function (a, b) { return b.d.score - a.d.score; }).forEach(function (item) {
        const text = item.d.label + " " + Math.round(item.d.score * 100) + "%";
        const tw = ctx.measureText(text).width + 8 * scale, th = 18 * scale;
        const spot = freeSpot(item.d.box, tw, th, placed);
        if (!spot) return;
        placed.push([spot[0], spot[1], spot[0] + tw, spot[1] + th]);
        ctx.fillStyle = colours[item.d.label] || "#888888";
        ctx.fillRect(spot[0], spot[1], tw, th);
        ctx.fillStyle = "#111";
        ctx.fillText(text, spot[0] + 4 * scale, spot[1] + 2.5 * scale);
      });
    }
    // the person hovered in the people list: their outline (box), so who wears what can be seen
    if (personHighlight >= 0 && people[personHighlight]) {
      const scale = W / Math.max(1, canvas.clientWidth || W);
      const [x1, y1, x2, y2] = people[personHighlight].box;
      ctx.setLineDash([8 * scale, 5 * scale]);
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 3 * scale;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.setLineDash([]);
    }
    canvas.dataset.person = String(personHighlight);
    // in CSS pixels of the displayed photo, for the browser test
    const k = Math.max(1, canvas.clientWidth) / W;
    canvas.dataset.labels = JSON.stringify(placed.map(function (r) { return r.map(function (v) { return +(v * k).toFixed(1); }); }));
  }

  // Where a tw x th label for this box overlaps none of `placed`: above the box's top-left corner, else
  // inside its top, then lower down the box, then at its right edge; null when nowhere is free.
  function freeSpot(box, tw, th, placed) {
    const [x1, y1, x2, y2] = box;
    const xs = [Math.min(Math.max(0, x1), W - tw), Math.min(Math.max(0, x2 - tw), W - tw)];
    const ys = [y1 - th];
    for (let y = y1; y <= Math.max(y1, y2 - th); y += th) ys.push(y);
    ys.push(y2);
    for (const x of xs) {
      for (const yy of ys) {
        const y = Math.min(Math.max(0, yy), H - th);
        const clear = placed.every(function (r) { return x + tw <= r[0] || r[2] <= x || y + th <= r[1] || r[3] <= y; });
        if (clear) return [x, y];
      }
    }
    return null;
  }

  const people = analysis.people || [];
  let personHighlight = -1;
  document.querySelectorAll("#people .person").forEach(function (row) {
    const index = Number(row.dataset.person);
    row.addEventListener("mouseenter", function () { personHighlight = index; draw(); });
    row.addEventListener("mouseleave", function () { personHighlight = -1; draw(); });
  });
  rows.forEach(function (row, index) {
    row.addEventListener("mouseenter", function () { highlight = index; draw(); });
    row.addEventListener("mouseleave", function () { highlight = -1; draw(); });
  });
  [showMasks, showBoxes].forEach(function (el) { el.addEventListener("change", draw); });
  slider.addEventListener("input", draw);
  window.addEventListener("resize", draw);

  // #item-N (a similar item's link): bring that garment's row into view and emphasise it on the photo
  // (the row is marked by CSS :target). Again on hashchange: a link to another garment of this photo.
  function showTarget() {
    const m = /^#item-(\d+)$/.exec(window.location.hash);
    const row = m && document.getElementById("item-" + m[1]);
    if (!row) return;
    highlight = Number(m[1]);
    draw();
    row.scrollIntoView({ block: "center" });
  }
  window.addEventListener("hashchange", showTarget);
  window.closetaiShowTarget = showTarget;  // similar.js calls it again once its buttons have moved the rows

  function ready() {
    draw();
    showTarget();
    document.body.dataset.ready = "1";  // the browser test and bench wait for this
  }
  const photo = document.getElementById("photo");
  if (photo.complete) ready(); else { photo.addEventListener("load", ready); photo.addEventListener("error", ready); }
})();
