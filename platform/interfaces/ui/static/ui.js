// gradwalk pages: job progress and the Cypher console's examples (graphs.js draws the graphs).
// Plain JavaScript; the cookie carries the session, so fetch() needs no header. The content security
// policy runs no inline script, handler or style: every page loads this file first, which finds what
// the page asks for by its elements (start, at the end) and lends its fetch helper as gradwalk.get.
"use strict";
(() => {
  const get = (url) => fetch(url, { credentials: "same-origin" }).then((r) => {
    if (r.status === 401 || r.redirected && r.url.includes("/ui/signin")) { location.href = "/ui/signin"; }
    if (!r.ok) { throw new Error(`${url}: HTTP ${r.status}`); }
    return r.json();
  });

  function followJob(box) {
    // Only a job that is still queued or running is followed; when it ends, the page reloads once
    // to show what the server renders for a finished job (components table, version link).
    if (!box || !["queued", "running"].includes(box.dataset.status)) { return; }
    const bar = document.getElementById("progress-bar");
    const tick = () => get(box.dataset.progressUrl).then((job) => {
      const percent = Math.round(100 * job.progress);
      bar.style.width = percent + "%";
      document.getElementById("job-percent").textContent = percent + " %";
      document.getElementById("job-stage").textContent = job.stage || "";
      const status = document.getElementById("job-status");
      status.textContent = job.status; status.className = "status-" + job.status;
      const error = document.getElementById("job-error");
      error.hidden = !job.error; error.textContent = job.error || "";
      if (job.version_url) {
        document.getElementById("version-link").href = job.version_url;
        document.getElementById("job-version").hidden = false;
      }
      const cancel = document.getElementById("cancel-form");
      if (cancel && !["queued", "running"].includes(job.status)) { cancel.remove(); }
      if (["queued", "running"].includes(job.status)) { setTimeout(tick, 700); }
      else { location.reload(); }
    }).catch(() => setTimeout(tick, 2000));
    tick();
  }

  function console_() {
    for (const link of document.querySelectorAll("a.example")) {
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        document.getElementById("query").value = link.dataset.query;
        const wanted = [...link.dataset.query.matchAll(/\$([A-Za-z_]\w*)/g)].map((m) => m[1]);
        const params = document.getElementById("params");
        const have = new Set(params.value.split("\n").map((l) => l.split("=")[0].trim()));
        const missing = [...new Set(wanted)].filter((w) => !have.has(w));
        if (missing.length) { params.value = (params.value.trim() + "\n" + missing.map((w) => w + "=").join("\n")).trim(); }
      });
    }
  }

  function start() {
    for (const select of document.querySelectorAll("select[data-autosubmit]")) {
      select.addEventListener("change", () => select.form.submit());
    }
    for (const bar of document.querySelectorAll(".bar[data-fraction]")) {
      bar.style.width = 100 * Number(bar.dataset.fraction) + "%";  // a CSSOM write, which the policy allows
    }
    followJob(document.getElementById("job"));
    if (document.getElementById("cypher-form")) { console_(); }
  }

  window.gradwalk = Object.freeze({ get });
  start();
})();
