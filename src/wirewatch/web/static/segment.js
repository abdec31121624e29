// Upload page: POST /api/segment (multipart field "image"), then overlay, histograms, sortable table, CSV.
"use strict";
(function () {
  const SHOWN = ["id", "score", "area_px", "length_px", "width_px", "aspect_ratio", "orientation_deg",
    "centroid_x", "centroid_y", "od_mean", "overlap_fraction", "touches_border"];
  const FRAME_STATS = ["particle_count", "coverage_fraction", "length_px_mean", "width_px_mean", "area_px_mean",
    "aspect_ratio_mean", "orientation_mean_deg", "orientation_order"];
  const $ = (id) => document.getElementById(id);
  let particles = [];
  let sortKey = "id", sortDir = 1, fileName = "upload";

  function showError(msg) {
    $("seg-error").textContent = msg;
    $("seg-error").hidden = !msg;
  }

  async function upload(file) {
    showError("");
    fileName = file.name.replace(/\.[^.]+$/, "") || "upload";
    $("seg-status").textContent = "segmenting " + file.name + "…";
    const form = new FormData();
    form.append("image", file, file.name);
    let resp, body;
    try {
      resp = await fetch("/api/segment", {method: "POST", body: form});
      body = await resp.json();
    } catch (err) {
      $("seg-status").textContent = "";
      showError("upload failed: " + err);
      return;
    }
    if (!resp.ok) {
      $("seg-status").textContent = "";
      showError(body.error || ("HTTP " + resp.status));
      return;
    }
    $("seg-status").textContent = `${file.name}: ${body.width} × ${body.height}, ${body.particles.length} particles, ` +
      `segmented in ${ww.fmt(body.segment_s)} s` + (body.backend ? ` (${body.backend})` : "");
    const img = $("seg-overlay");
    img.src = "data:image/png;base64," + body.overlay_png;
    img.hidden = false;
    if (body.histograms_png) {
      $("histograms").src = "data:image/png;base64," + body.histograms_png;
      $("histograms").hidden = false;
    }
    const fs = document.querySelector("#frame-stats tbody");
    fs.textContent = "";
    for (const k of FRAME_STATS) {
      const tr = ww.el("tr", {"data-stat": k});
      tr.appendChild(ww.el("td", {}, k));
      tr.appendChild(ww.el("td", {}, ww.fmt(body.frame[k])));
      fs.appendChild(tr);
    }
    particles = body.particles;
    $("particle-count").textContent = particles.length;
    $("csv").disabled = particles.length === 0;
    renderTable();
  }

  function renderTable() {
    const thead = document.querySelector("#particles thead");
    const tbody = document.querySelector("#particles tbody");
    thead.textContent = "";
    tbody.textContent = "";
    const hr = ww.el("tr");
    for (const k of SHOWN) {
      const th = ww.el("th", {class: "sortable" + (k === sortKey ? (sortDir > 0 ? " sorted-asc" : " sorted-desc") : ""),
        "data-key": k}, k);
      th.addEventListener("click", () => {
        sortDir = k === sortKey ? -sortDir : 1;
        sortKey = k;
        renderTable();
      });
      hr.appendChild(th);
    }
    thead.appendChild(hr);
    const rows = particles.slice().sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    for (const p of rows) {
      const tr = ww.el("tr");
      for (const k of SHOWN) tr.appendChild(ww.el("td", {}, ww.fmt(p[k])));
      tbody.appendChild(tr);
    }
  }

  function csvText() {
    const cols = particles.length ? Object.keys(particles[0]) : SHOWN;
    const cell = (v) => v === null || v === undefined ? "" : typeof v === "boolean" ? (v ? "1" : "0") : String(v);
    return [cols.join(","), ...particles.map((p) => cols.map((c) => cell(p[c])).join(","))].join("\n") + "\n";
  }

  $("csv").addEventListener("click", () => {
    const a = ww.el("a", {href: URL.createObjectURL(new Blob([csvText()], {type: "text/csv"})),
      download: fileName + "-particles.csv"});
    document.body.appendChild(a);
    a.click();
    a.remove();
  });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
  const dz = $("dropzone");
  dz.addEventListener("dragover", (e) => { e.preventDefault(); dz.classList.add("over"); });
  dz.addEventListener("dragleave", () => dz.classList.remove("over"));
  dz.addEventListener("drop", (e) => {
    e.preventDefault();
    dz.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
})();
