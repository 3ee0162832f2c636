// Live scan status on the case page: poll the API for unfinished scans, then refresh the images section.
"use strict";

(function () {
  const POLL_MS = 1000;

  function refreshImages() {
    const section = document.getElementById("images");
    if (!section) return;
    fetch(section.dataset.imagesUrl, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { section.innerHTML = html; })  // server-rendered, auto-escaped template
      .catch(() => {});
  }

  function watch(cell) {
    const url = cell.dataset.evidenceUrl;
    const status = cell.querySelector('[data-field="status"]');
    const bar = cell.querySelector('[data-field="progress"]');
    const error = cell.querySelector('[data-field="error"]');
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then((evidence) => {
          const scan = evidence.scan || {};
          status.textContent = scan.status || "unknown";
          status.className = "status status-" + (scan.status || "unknown");
          bar.value = scan.progress || 0;
          bar.textContent = String(scan.progress || 0);
          error.textContent = scan.error || "";
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

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-scan-status]").forEach((cell) => {
      if (cell.dataset.done !== "1") watch(cell);
    });
  });
})();
