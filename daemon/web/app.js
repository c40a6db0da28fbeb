// The queue page: polls /api/queue and redraws. Text goes in with
// textContent only (never as HTML), and nothing is loaded from elsewhere.
"use strict";

const POLL_MS = 1500;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function bytes(b) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i === 0 ? b.toFixed(0) : b.toFixed(1)) + " " + u[i];
}

function dur(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 10) return Math.max(0, s).toFixed(1) + " s";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  const h = Math.floor(s / 3600);
  return h + " h " + Math.floor((s % 3600) / 60) + " min";
}

function bar(frac) {
  const b = el("div", "bar");
  const f = el("span");
  f.style.width = (Math.min(1, Math.max(0, frac)) * 100).toFixed(1) + "%";
  b.appendChild(f);
  return b;
}

function fill(tbody, rows, cols, empty) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "empty", empty);
    td.colSpan = cols;
    tr.appendChild(td);
    tbody.appendChild(tr);
    return;
  }
  for (const r of rows) tbody.appendChild(r);
}

function row(id, cells) {
  const tr = el("tr");
  tr.dataset.jobId = id;
  for (const c of cells) {
    if (c instanceof Node) {
      const td = el("td");
      td.appendChild(c);
      tr.appendChild(td);
    } else {
      tr.appendChild(el("td", c.cls || "", c.text));
    }
  }
  return tr;
}

function summary(d) {
  const tot = { queued: 0, running: 0, done: 0, failed: 0, canceled: 0 };
  for (const t of d.types) for (const k in tot) tot[k] += t[k] || 0;
  const box = document.getElementById("summary");
  box.replaceChildren();
  for (const k of Object.keys(tot)) {
    const t = el("div", "tile");
    t.id = "tile-" + k;
    t.appendChild(el("div", "n", tot[k]));
    t.appendChild(el("div", "l", k));
    box.appendChild(t);
  }
}

function devices(d) {
  const box = document.getElementById("devices");
  box.replaceChildren();
  for (const v of d.devices) {
    const c = el("div", "device");
    c.dataset.device = v.name;
    c.appendChild(el("div", "name", v.name + (v.kind === "cuda" ? " (GPU)" : " (CPU)")));
    const frac = v.capacity > 0 ? v.granted / v.capacity : 0;
    c.appendChild(bar(frac));
    c.appendChild(el("div", "meta", bytes(v.granted) + " granted of " + bytes(v.capacity)));
    c.appendChild(el("div", "meta", v.running + " of " + v.slots + " slots busy" +
      (v.memory_total ? " · " + bytes(v.memory_total) + " on the device" : "")));
    box.appendChild(c);
  }
}

function running(d) {
  const rows = d.running.map((j) => {
    const p = el("div", "progress");
    p.appendChild(bar(j.progress));
    p.appendChild(el("span", "pct", (j.progress * 100).toFixed(0) + " %"));
    return row(j.id, [{ text: j.id }, { text: j.type }, { text: j.device }, p,
      { text: dur(j.elapsed_s) }, { text: j.eta_s === null ? "–" : dur(j.eta_s), cls: "eta" }]);
  });
  document.getElementById("running-count").textContent = "(" + d.running.length + ")";
  fill(document.querySelector("#running tbody"), rows, 6, "nothing is running");
}

function queue(d) {
  const rows = d.queue.map((j, i) => row(j.id, [{ text: i + 1 }, { text: j.id }, { text: j.type },
    { text: j.device || "–" }, { text: j.reason, cls: "reason wide" }]));
  document.getElementById("queue-count").textContent = "(" + d.queue_total + ")";
  fill(document.querySelector("#queue tbody"), rows, 5, "the queue is empty");
  const more = d.queue_total - d.queue.length;
  document.getElementById("queue-more").textContent = more > 0 ? "and " + more + " more" : "";
}

function recent(d) {
  const rows = d.recent.map((j) => row(j.id, [{ text: j.id }, { text: j.type },
    el("span", "badge " + j.state, j.state), { text: j.device || "–" },
    { text: dur(j.run_s) }, { text: dur(d.now - j.finished) + " ago" }]));
  fill(document.querySelector("#recent tbody"), rows, 6, "no job has finished yet");
}

function draw(d) {
  summary(d);
  devices(d);
  running(d);
  queue(d);
  recent(d);
  document.getElementById("version").textContent = "neuroqd " + d.version +
    (d.draining ? " · stopping" : "");
  const st = document.getElementById("status");
  st.className = "status live";
  st.textContent = "live · " + new Date(d.now * 1000).toLocaleTimeString();
}

async function poll() {
  try {
    const r = await fetch("/api/queue", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    draw(await r.json());
  } catch (e) {
    const st = document.getElementById("status");
    st.className = "status stale";
    st.textContent = "no answer from neuroqd (" + e.message + ")";
  }
  setTimeout(poll, POLL_MS);
}

poll();
