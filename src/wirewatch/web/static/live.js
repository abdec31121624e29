// Live page: one EventSource (/api/events); numbers, sparklines, change points, alerts, overlay.
"use strict";
(function () {
  const KEY_STATS = [
    ["particle_count", "particles"], ["coverage_fraction", "coverage"], ["length_px_mean", "mean length (px)"],
    ["width_px_mean", "mean width (px)"], ["area_px_mean", "mean area (px)"], ["aspect_ratio_mean", "mean aspect ratio"],
    ["orientation_mean_deg", "mean orientation (deg)"], ["orientation_order", "orientation order S"],
    ["reliability", "segmentation reliability (0-1)"],
  ];
  const MAX_RECORDS = 5000;
  let records = [];
  let changepoints = [];
  const firing = new Map();
  let pending = false;

  const $ = (id) => document.getElementById(id);
  const tbody = document.querySelector("#stats tbody");
  for (const [name, label] of KEY_STATS) {
    const tr = ww.el("tr", {"data-stat": name});
    tr.appendChild(ww.el("td", {title: name}, label));
    tr.appendChild(ww.el("td", {id: "v-" + name, class: "value"}, "–"));
    const td = ww.el("td");
    td.appendChild(ww.svg("svg", {id: "s-" + name, class: "spark", viewBox: "0 0 180 34", preserveAspectRatio: "none"}));
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  function schedule() {
    if (!pending) { pending = true; requestAnimationFrame(render); }
  }

  function render() {
    pending = false;
    const last = records[records.length - 1];
    $("no-stream").hidden = records.length > 0;
    if (!last) return;
    $("latest-frame").textContent = last.frame;
    $("stats").dataset.frame = last.frame;
    const win = parseInt($("window").value, 10);
    const shown = records.slice(-win);
    const f0 = shown[0].frame, f1 = shown[shown.length - 1].frame;
    for (const [name] of KEY_STATS) {
      $("v-" + name).textContent = ww.fmt(last.stats[name]);
      drawSpark($("s-" + name), shown, name, f0, f1);
    }
  }

  function drawSpark(svg, shown, name, f0, f1) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const vals = shown.map((r) => r.stats[name]).filter((v) => v !== null && v !== undefined);
    if (vals.length < 1) return;
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    const span = Math.max(f1 - f0, 1);
    const x = (f) => ((f - f0) / span) * 178 + 1;
    const y = (v) => 32 - ((v - lo) / (hi - lo)) * 30;
    for (const cp of changepoints) {
      if (cp.frame < f0 || cp.frame > f1) continue;
      const mine = cp.statistics.includes(name);
      svg.appendChild(ww.svg("line", {x1: x(cp.frame), x2: x(cp.frame), y1: 0, y2: 34, class: mine ? "cp" : "cp-other"}));
    }
    const pts = [];
    for (const r of shown) {
      const v = r.stats[name];
      if (v !== null && v !== undefined) pts.push(x(r.frame).toFixed(1) + "," + y(v).toFixed(1));
    }
    svg.appendChild(ww.svg("polyline", {points: pts.join(" ")}));
  }

  function addChangepoint(cp) {
    changepoints.push(cp);
    const li = ww.el("li", {class: "sev-" + cp.severity, "data-frame": cp.frame},
      `frame ${cp.frame} (detected at ${cp.detected_at}): ${cp.statistics.join(", ")} · ${cp.detector}` +
      (cp.effect_size !== null ? ` · effect ${ww.fmt(cp.effect_size)}` : ""));
    $("changepoints").prepend(li);
    $("cp-count").textContent = changepoints.length;
  }

  function renderAlerts() {
    const ul = $("alerts");
    ul.textContent = "";
    for (const a of firing.values()) {
      const sev = (a.labels && a.labels.severity) || "warning";
      const text = (a.annotations && (a.annotations.summary || a.annotations.description)) || "";
      ul.appendChild(ww.el("li", {class: "sev-" + sev}, `${a.name} since frame ${a.frame ?? "?"} ${text}`));
    }
    $("alert-count").textContent = firing.size;
  }

  function onAlert(a) {
    if (a.state === "firing") firing.set(a.fingerprint, a); else firing.delete(a.fingerprint);
  }

  function onStatus(s) {
    $("fps").textContent = ww.fmt(Math.round(s.fps * 10) / 10);
    $("processed").textContent = s.processed !== undefined ? ww.fmt(s.processed) : ww.fmt(s.frames_observed);
    $("dropped").textContent = s.dropped !== undefined ? ww.fmt(s.dropped) : "–";
    $("errors").textContent = s.errors !== undefined ? ww.fmt(s.errors) : "–";
  }

  const source = new EventSource("/api/events?last=" + MAX_RECORDS);
  source.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "conn-ok"; });
  source.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn-bad"; });
  source.addEventListener("hello", (e) => {
    const d = JSON.parse(e.data);
    records = d.records;
    changepoints = [];
    $("changepoints").textContent = "";
    for (const cp of d.changepoints) addChangepoint(cp);
    firing.clear();
    for (const a of d.alerts.firing) firing.set(a.fingerprint, a);
    renderAlerts();
    onStatus(d.status);
    schedule();
  });
  source.addEventListener("frame", (e) => {
    const r = JSON.parse(e.data);
    if (records.length && r.frame <= records[records.length - 1].frame && r.series === records[records.length - 1].series) {
      records = [];  // ids went backwards: a new series; start the sparklines afresh
    }
    records.push(r);
    if (records.length > MAX_RECORDS) records.splice(0, records.length - MAX_RECORDS);
    $("fps").textContent = ww.fmt(Math.round(r.fps * 10) / 10);
    schedule();
  });
  source.addEventListener("overlay", (e) => {
    const d = JSON.parse(e.data);
    const img = $("overlay");
    img.src = "data:image/jpeg;base64," + d.jpeg;
    img.dataset.frame = d.frame;
    $("overlay-caption").textContent = "(frame " + d.frame + ")";
  });
  source.addEventListener("changepoint", (e) => { addChangepoint(JSON.parse(e.data)); schedule(); });
  source.addEventListener("alert", (e) => { onAlert(JSON.parse(e.data)); renderAlerts(); });
  source.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  $("window").addEventListener("change", schedule);
})();
