// Lowerdir page behaviour. One external script (the CSP allows no inline script): live scan status,
// upload progress, local times beside UTC ones, select-all checkboxes. htmx does the partial updates.
"use strict";

(function () {
  const POLL_MS = 1000;

  // --- live scan status -----------------------------------------------------------------------------
  function refreshImages() {
    const section = document.getElementById("images");
    if (!section || !section.dataset.imagesUrl) return;
    fetch(section.dataset.imagesUrl, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { section.innerHTML = html; enhance(section); })  // server-rendered, auto-escaped
      .catch(() => {});
  }

  function watch(cell) {
    const url = cell.dataset.evidenceUrl;
    const status = cell.querySelector('[data-field="status"]');
    const bar = cell.querySelector('[data-field="progress"]');
    const percent = cell.querySelector('[data-field="percent"]');
    const error = cell.querySelector('[data-field="error"]');
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then((evidence) => {
          const scan = evidence.scan || {};
          const progress = scan.progress || 0;
          status.textContent = scan.status || "unknown";
          status.className = "status status-" + (scan.status || "unknown");
          bar.value = progress;
          bar.textContent = String(progress);
          if (percent) percent.textContent = scan.status === "succeeded" ? "done" : Math.round(progress * 100) + "%";
          if (error) error.textContent = scan.error || "";
          if (scan.status === "succeeded" || scan.status === "failed") {
            cell.dataset.done = "1";
            refreshImages();
          } else {
            setTimeout(tick, POLL_MS);
          }
        })
        .catch(() => setTimeout(tick, POLL_MS * 5));
    }
    tick();
  }

  // --- upload with a progress bar (bytes sent, rate, time left) ----------------------------------------
  function human(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let n = bytes, u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u += 1; }
    return (u === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[u];
  }

  function duration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "";
    const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
  }

  function setupUpload(form) {
    const box = form.querySelector("[data-upload-progress]");
    const bar = box.querySelector('[data-field="bar"]');
    const text = box.querySelector('[data-field="text"]');
    const button = form.querySelector('button[type="submit"]');
    form.addEventListener("submit", (event) => {
      const input = form.querySelector('input[type="file"]');
      if (!input || !input.files.length || !window.XMLHttpRequest) return;  // plain form post
      event.preventDefault();
      const xhr = new XMLHttpRequest();
      const started = performance.now();
      const samples = [];
      box.hidden = false;
      button.disabled = true;
      bar.value = 0;
      text.textContent = "Starting upload…";
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const now = performance.now();
        samples.push([now, e.loaded]);
        while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
        const [t0, b0] = samples[0];
        const rate = now > t0 ? ((e.loaded - b0) / (now - t0)) * 1000 : 0;
        bar.value = (100 * e.loaded) / e.total;
        const left = rate > 0 ? duration((e.total - e.loaded) / rate) : "";
        text.textContent = human(e.loaded) + " of " + human(e.total) + " sent · " + human(rate) + "/s" +
          (left ? " · " + left + " left" : "") + (e.loaded >= e.total ? " · hashing and storing…" : "");
      });
      xhr.addEventListener("load", () => {
        button.disabled = false;
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = { detail: xhr.responseText }; }
        if (xhr.status === 201) {
          bar.value = 100;
          const secs = (performance.now() - started) / 1000;
          text.textContent = "Received " + body.name + " (" + human(body.size) + " in " + duration(secs) +
            "), SHA-256 " + body.sha256 + ". Scanning…";
          text.dataset.state = "done";
          setTimeout(() => window.location.assign(body.url || window.location.href), 800);
        } else {
          text.textContent = "Upload failed (" + xhr.status + "): " + (body.detail || "unknown error");
          text.dataset.state = "error";
        }
      });
      xhr.addEventListener("error", () => {
        button.disabled = false;
        text.textContent = "Upload failed: the connection was lost. Nothing was kept; try again.";
        text.dataset.state = "error";
      });
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.send(new FormData(form));
    });
  }

  // --- UTC times with the viewer's local time beside them ------------------------------------------------
  const localFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });

  function showLocal(el) {
    if (el.dataset.localDone) return;
    const when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) return;
    el.dataset.localDone = "1";
    if (when.getTimezoneOffset() === 0) return;  // the viewer's local time is UTC: nothing to add
    const span = document.createElement("span");
    span.className = "local";
    span.textContent = " (" + localFormat.format(when) + ")";
    el.title = "Local time: " + localFormat.format(when);
    el.appendChild(span);
  }

  function previewUtcInput(input) {
    const out = input.parentElement.querySelector("[data-local-preview]");
    if (!out) return;
    const update = () => {
      const raw = input.value.trim().replace(" ", "T");
      const when = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(raw) ? raw : raw + "Z");
      out.textContent = isNaN(when) ? "" : "Your local time: " + localFormat.format(when);
    };
    input.addEventListener("input", update);
    update();
  }

  // --- select all rows ---------------------------------------------------------------------------------
  function setupSelectAll(box) {
    box.addEventListener("change", () => {
      const table = box.closest("table");
      table.querySelectorAll('input[type="checkbox"][form="' + box.dataset.selectAll + '"]').forEach((c) => {
        c.checked = box.checked;
      });
    });
  }

  function once(setup) {
    return (el) => {
      if (el.dataset.enhanced) return;
      el.dataset.enhanced = "1";
      setup(el);
    };
  }

  function enhance(root) {
    root.querySelectorAll("time[data-local]").forEach(showLocal);
    root.querySelectorAll("[data-utc-input]").forEach(once(previewUtcInput));
    root.querySelectorAll("[data-select-all]").forEach(once(setupSelectAll));
    root.querySelectorAll("form[data-upload]").forEach(once(setupUpload));
    root.querySelectorAll("[data-scan-status]").forEach((cell) => {
      if (cell.dataset.done !== "1" && !cell.dataset.watching) { cell.dataset.watching = "1"; watch(cell); }
    });
  }

  // --- findings: the row shown in the side panel is highlighted; j / k move, c confirms ------------------
  let selectedRowId = "";

  function selectRow(row, open) {
    document.querySelectorAll("table.findings tr.selected").forEach((r) => r.classList.remove("selected"));
    if (!row) return;
    row.classList.add("selected");
    selectedRowId = row.id;
    const link = row.querySelector("td.title a");
    if (open && link) { link.focus(); link.click(); }
  }

  function setupFindingKeys() {
    document.addEventListener("click", (e) => {
      const link = e.target.closest("table.findings td.title a");
      if (link) selectRow(link.closest("tr"), false);
    });
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, textarea, select")) return;
      const rows = [...document.querySelectorAll("table.findings tbody tr[id^=finding-row-]")];
      if (!rows.length) return;
      const current = rows.findIndex((r) => r.classList.contains("selected"));
      if (e.key === "j" || e.key === "k") {
        const next = e.key === "j" ? Math.min(current + 1, rows.length - 1) : Math.max(current - 1, 0);
        selectRow(rows[next], true);
        e.preventDefault();
      } else if (e.key === "c" && current >= 0) {
        const confirm = rows[current].querySelector("td.actions button");
        if (confirm) confirm.click();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.querySelector("table.findings")) setupFindingKeys();
    enhance(document);
    document.body.addEventListener("htmx:afterSettle", (e) => {
      enhance(e.detail.elt.parentElement || document);
      const row = selectedRowId && document.getElementById(selectedRowId);  // a swapped row keeps its place
      if (row) row.classList.add("selected");
    });
  });
})();
