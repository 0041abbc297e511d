// Review page of `echotemporal serve`: upload, poll the job, draw the volume curve and the contours.
"use strict";

const $ = (id) => document.getElementById(id);
const BEFORE = "#d95f02", AFTER = "#1b9e77", FLAG = "#b00020";
const state = { job: null, frames: null, contours: null, summary: null };

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    throw new Error((body.error || response.statusText) + (body.hint ? " — " + body.hint : ""));
  }
  return response;
}

function setStatus(text, failed = false) {
  $("status").textContent = text;
  $("status").className = failed ? "failed" : "";
}

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("sequence").files) form.append("sequence", file, file.name);
  if ($("info").files.length) form.append("info", $("info").files[0], $("info").files[0].name);
  if ($("method").value) form.append("method", $("method").value);
  $("results").hidden = true;
  setStatus("uploading…");
  try {
    const job = await (await api("v1/jobs", { method: "POST", body: form })).json();
    state.job = job;
    await poll(job.status_url);
  } catch (error) {
    setStatus("error: " + error.message, true);
  }
});

// Long-polls the status (?wait=1): the end of the job shows at once, the progress once a second.
async function poll(url) {
  for (;;) {
    const status = await (await api(url + "?wait=1")).json();
    if (status.status === "queued") setStatus(`queued (position ${status.queue_position})…`);
    else if (status.status === "running") setStatus(`running (${status.elapsed_s.toFixed(1)} s)…`);
    else if (status.status === "failed") {
      setStatus(`failed: ${status.error.error}${status.error.hint ? " — " + status.error.hint : ""}`, true);
      return;
    } else {
      setStatus(`done in ${status.elapsed_s.toFixed(1)} s: ${status.input}, ${status.summary.n_frames} frames, ` +
                `method ${status.summary.method}`);
      await show(status);
      return;
    }
  }
}

async function show(status) {
  state.summary = status.summary;
  state.frames = await (await api(status.results["frames.json"])).json();
  $("results").hidden = false;
  drawCurve();
  fillIndices();
  fillDownloads(status.results);
  const slider = $("frame-slider");
  slider.max = String(state.frames.frame.length - 1);
  slider.value = String(state.summary.ed_frame ?? 0);
  state.contours = await (await api(status.results["contours.json"])).json();
  drawFrame();
}

function finite(values) { return values.filter((v) => v !== null && Number.isFinite(v)); }

function drawCurve() {
  const canvas = $("curve"), ctx = canvas.getContext("2d");
  const f = state.frames, s = state.summary;
  const before = f.lv_volume_ml_before, after = f.lv_volume_ml_after, n = f.frame.length;
  const all = finite(before.concat(after));
  const lo = Math.min(...all), hi = Math.max(...all), pad = (hi - lo) * 0.1 || 1;
  const L = 62, R = 22, T = 15, B = 35, W = canvas.width - L - R, H = canvas.height - T - B;
  const x = (t) => L + (n > 1 ? (t / (n - 1)) * W : W / 2);
  const y = (v) => T + H - ((v - (lo - pad)) / (hi - lo + 2 * pad)) * H;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  ctx.strokeRect(L, T, W, H);
  for (let k = 0; k <= 4; k++) {
    const v = lo - pad + ((hi - lo + 2 * pad) * k) / 4;
    ctx.textAlign = "right"; ctx.fillText(v.toFixed(0), L - 5, y(v) + 4); ctx.textAlign = "left";
  }
  const step = Math.max(1, Math.ceil(n / 10));
  // Frames are numbered from 1 wherever a person reads them, as in the Info cfg.
  for (let t = 0; t < n; t += step) ctx.fillText(String(t + 1), x(t) - 3, T + H + 14);
  ctx.fillText("frame (from 1)", L + W / 2 - 30, T + H + 30);
  ctx.save(); ctx.translate(14, T + H / 2 + 40); ctx.rotate(-Math.PI / 2); ctx.fillText("LV volume (mL)", 0, 0); ctx.restore();
  for (const [key, dash] of [["ed_frame", []], ["es_frame", [3, 3]]]) {
    if (s[key] === null || s[key] === undefined) continue;
    ctx.setLineDash(dash); ctx.strokeStyle = "#000";
    ctx.beginPath(); ctx.moveTo(x(s[key]), T); ctx.lineTo(x(s[key]), T + H); ctx.stroke();
    const name = key === "ed_frame" ? "ED" : "ES", right = x(s[key]) > L + W - 20;
    ctx.fillStyle = "#000"; ctx.fillText(name, right ? x(s[key]) - 18 : x(s[key]) + 3, T + 11);
  }
  const line = (values, color, dash) => {
    ctx.setLineDash(dash); ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    values.forEach((v, t) => {
      if (v === null) { pen = false; return; }
      if (pen) ctx.lineTo(x(t), y(v)); else ctx.moveTo(x(t), y(v));
      pen = true;
    });
    ctx.stroke(); ctx.setLineDash([]);
    values.forEach((v, t) => { if (v !== null) { ctx.beginPath(); ctx.arc(x(t), y(v), 2.5, 0, 2 * Math.PI); ctx.fill(); } });
  };
  line(before, BEFORE, [6, 4]);
  line(after, AFTER, []);
  ctx.strokeStyle = FLAG; ctx.lineWidth = 2;
  f.inconsistent_before.forEach((flag, t) => {
    if (!flag || before[t] === null) return;
    const cx = x(t), cy = y(before[t]);
    ctx.beginPath(); ctx.moveTo(cx - 5, cy - 5); ctx.lineTo(cx + 5, cy + 5); ctx.moveTo(cx + 5, cy - 5); ctx.lineTo(cx - 5, cy + 5); ctx.stroke();
  });
  const slider = $("frame-slider");
  if (slider.max !== "0" || n === 1) {
    const t = Number(slider.value);
    ctx.strokeStyle = "rgba(0,0,255,.35)"; ctx.lineWidth = 6;
    ctx.beginPath(); ctx.moveTo(x(t), T); ctx.lineTo(x(t), T + H); ctx.stroke();
  }
}

function drawFrame() {
  const t = Number($("frame-slider").value);
  $("frame-number").textContent = String(t + 1);
  const f = state.frames;
  const notes = [];
  if (f.inconsistent_before[t]) notes.push("flagged in input");
  if (f.valid_before && !f.valid_before[t]) notes.push("invalid in input");
  if (f.changed && f.changed[t]) notes.push("changed");
  $("frame-flags").textContent = notes.join(", ");
  drawCurve();
  if (!state.contours) return;
  const canvas = $("frame-canvas"), ctx = canvas.getContext("2d");
  const [h, w] = state.contours.shape, [sy, sx] = state.contours.spacing_mm;
  const scale = Math.min(canvas.width / (w * sx), canvas.height / (h * sy));
  const ox = (canvas.width - w * sx * scale) / 2, oy = (canvas.height - h * sy * scale) / 2;
  ctx.fillStyle = "#111"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const fills = { 1: "rgba(230,80,80,.35)", 2: "rgba(90,140,230,.35)", 3: "rgba(230,200,60,.3)" };
  const path = (flat) => {
    ctx.beginPath();
    for (let k = 0; k < flat.length; k += 2) {
      const px = ox + flat[k] * sx * scale, py = oy + flat[k + 1] * sy * scale;
      if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    }
  };
  const frame = state.contours.frames[t];
  for (const [label, lines] of Object.entries(frame.after)) {
    ctx.fillStyle = fills[label];
    for (const flat of lines) { path(flat); ctx.fill(); }
  }
  for (const [which, color, dash] of [["before", BEFORE, [5, 4]], ["after", AFTER, []]]) {
    ctx.strokeStyle = color; ctx.lineWidth = 1.6; ctx.setLineDash(dash);
    for (const lines of Object.values(frame[which])) for (const flat of lines) { path(flat); ctx.stroke(); }
  }
  ctx.setLineDash([]);
}

$("frame-slider").addEventListener("input", drawFrame);

function oneBased(t) { return t === null || t === undefined ? t : Number(t) + 1; }

function fmt(v, digits = 1) { return v === null || v === undefined ? "n/a" : Number(v).toFixed(digits); }

function fillIndices() {
  const s = state.summary, body = $("indices").querySelector("tbody");
  const rows = [
    ["EDV (mL)", s.edv_ml_before, s.edv_ml_after], ["ESV (mL)", s.esv_ml_before, s.esv_ml_after],
    ["EF (%)", s.ef_percent_before, s.ef_percent_after], ["GLS (%)", s.gls_percent_before, s.gls_percent_after],
    ["ED frame (from 1)", oneBased(s.ed_frame_before), oneBased(s.ed_frame), 0],
    ["ES frame (from 1)", oneBased(s.es_frame_before), oneBased(s.es_frame), 0],
    ["inconsistent frames", s.n_inconsistent_before, s.n_inconsistent_after, 0],
    ["invalid frames", s.n_invalid_before, s.n_invalid_after, 0],
  ];
  body.innerHTML = "";
  for (const [name, before, after, digits] of rows) {
    const tr = document.createElement("tr");
    for (const text of [name, fmt(before, digits ?? 1), fmt(after, digits ?? 1)]) {
      const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function fillDownloads(results) {
  const list = $("downloads");
  list.innerHTML = "";
  for (const name of ["labels.nii.gz", "frames.csv", "summary.json", "volume.png"]) {
    const a = document.createElement("a");
    a.href = results[name]; a.textContent = name; a.download = name;
    a.addEventListener("click", async (event) => {
      if (!$("token").value.trim()) return; // a plain link when the server needs no token
      event.preventDefault();
      const blob = await (await api(results[name])).blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob); link.download = name; link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    });
    const li = document.createElement("li"); li.appendChild(a); list.appendChild(li);
  }
}
