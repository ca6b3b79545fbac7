// gradwalk pages: a feature run's or graph build's live block (templates/_live.html). It polls the
// record's progress answer, shows done / total, the status and an ETA, and reloads the page once
// when the work ends, as the job page does. No inline script: the page loads this file, after ui.js
// (whose gradwalk.get fetches the answer and sends a signed-out reader to the sign-in page).
"use strict";
(() => {
  const POLL_MS = 1000;
  const { get } = window.gradwalk;

  function eta(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    const s = Math.round(seconds);
    return "· about " + (s < 120 ? `${s} s` : `${Math.round(s / 60)} min`) + " left";
  }

  function follow(box) {
    if (!box || !box.dataset.active) { return; }
    const bar = document.getElementById("work-bar");
    const tick = () => get(box.dataset.progressUrl).then((work) => {
      bar.style.width = (work.total ? 100 * work.done / work.total : 0) + "%";  // a CSSOM write, which the policy allows
      const status = document.getElementById("work-status");
      status.textContent = work.status; status.className = "status-" + work.status;
      document.getElementById("work-count").textContent = `${work.done} / ${work.total} ${work.unit}`;
      document.getElementById("work-eta").textContent = eta(work.eta_s);
      const error = document.getElementById("work-error");
      error.hidden = !work.error; error.textContent = work.error || "";
      if (work.active) { setTimeout(tick, POLL_MS); } else { location.reload(); }
    }).catch(() => setTimeout(tick, 2 * POLL_MS));
    tick();
  }

  follow(document.getElementById("work"));
})();
