// gradwalk pages: job progress, the neighbourhood and walk graphs (cytoscape.js), the Cypher console.
// Plain JavaScript; the cookie carries the session, so fetch() needs no header. The content security
// policy runs no inline script, handler or style: every page loads this file, which finds what the
// page asks for by its elements (start, at the end).
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

  const STYLE = [
    { selector: "node", style: { "background-color": "#3b6ea8", width: 14, height: 14, label: "data(short)",
      "font-size": 7, color: "#334", "text-wrap": "ellipsis", "text-max-width": 90 } },
    { selector: "node.center", style: { "background-color": "#1d2430", width: 24, height: 24, "font-size": 9 } },
    { selector: "node.anchor", style: { "background-color": "#e0a030", width: 22, height: 22 } },
    { selector: "edge", style: { width: "mapData(w, 0, 1, 0.5, 5)", "line-color": "#c5cdd8", "curve-style": "bezier",
      "target-arrow-shape": "triangle", "target-arrow-color": "#c5cdd8", "arrow-scale": 0.5, opacity: 0.8 } },
    { selector: "edge.other", style: { opacity: 0.3, width: 1 } },
    { selector: "edge.step", style: { width: 3, "line-color": "#e0a030", "target-arrow-color": "#e0a030", opacity: 1 } },
    { selector: "edge.jump", style: { "line-style": "dashed" } },
  ];

  function graph(box, elements, layout) {
    return cytoscape({ container: box, elements, style: STYLE, wheelSensitivity: 0.3, maxZoom: 1.6,
      layout: layout || { name: "cose", animate: false, nodeRepulsion: 9000, idealEdgeLength: 90 } });
  }

  const short = (label) => (label || "").slice(0, 28);

  function drawNeighbourhood(box, stats) {
    if (!box) { return; }
    const url = (id) => `/ui/instructions/${encodeURIComponent(id)}/neighbourhood?graph=${encodeURIComponent(box.dataset.graph)}`;
    const add = (cy, data) => {
      const fresh = [];
      for (const n of data.nodes) {
        if (cy.getElementById(n.id).empty()) { fresh.push({ group: "nodes", data: { id: n.id, label: n.label, short: short(n.label) } }); }
      }
      for (const e of data.edges) {
        const id = e.source + ">" + e.target;
        if (cy.getElementById(id).empty()) { fresh.push({ group: "edges", data: { id, source: e.source, target: e.target, w: e.w } }); }
      }
      cy.add(fresh);
      return fresh.length;
    };
    const started = performance.now();
    get(url(box.dataset.center)).then((data) => {
      const cy = graph(box, []);
      add(cy, data);
      const center = cy.getElementById(box.dataset.center).addClass("center");
      cy.layout({ name: "concentric", animate: false, minNodeSpacing: 40,
        concentric: (n) => (n.same(center) ? 2 : 1), levelWidth: () => 1 }).run();
      const show = () => {
        stats.textContent = `${cy.nodes().length} nodes, ${cy.edges().length} edges`;
        box.dataset.nodes = cy.nodes().length; box.dataset.edges = cy.edges().length;
      };
      show();
      box.dataset.drawMs = Math.round(performance.now() - started);
      cy.on("tap", "node", (ev) => { box.dataset.selected = ev.target.id(); });
      cy.on("dbltap", "node", (ev) => get(url(ev.target.id())).then((more) => {
        if (add(cy, more)) { cy.layout({ name: "cose", animate: false, nodeRepulsion: 9000 }).run(); }
        show();
      }));
      cy.on("cxttap", "node", (ev) => { location.href = `/ui/instructions/${encodeURIComponent(ev.target.id())}?graph=${encodeURIComponent(box.dataset.graph)}`; });
      box.cy = cy; box.dataset.ready = "1";
    });
  }

  function drawWalk(box, picker, list) {
    if (!box || !picker) { return; }
    let cy = null;
    const load = () => get(box.dataset.url + picker.value).then((walk) => {
      const elements = walk.steps.map((s) => ({ group: "nodes", classes: s.reached_by === "anchor" ? "anchor" : "",
        data: { id: s.id, label: s.label, short: `${s.step}` } }));
      const onPath = new Set();
      for (const s of walk.steps) {
        if (!s.predecessor) { continue; }
        onPath.add(s.predecessor + ">" + s.id);
        elements.push({ group: "edges", classes: "step" + (s.reached_by === "fallback" ? " jump" : ""),
          data: { id: s.predecessor + ">" + s.id, source: s.predecessor, target: s.id, w: 1 } });
      }
      for (const e of walk.edges) {
        const id = e.source + ">" + e.target;
        if (!onPath.has(id)) { elements.push({ group: "edges", classes: "other", data: { id, source: e.source, target: e.target, w: e.w } }); }
      }
      if (cy) { cy.destroy(); }
      // The path snakes across the box in step order: anchor top left, each row of 8 steps turning back.
      const perRow = 8, dx = box.clientWidth / (perRow + 1), dy = 90;
      const at = (step) => { const row = Math.floor(step / perRow), col = step % perRow;
        return { x: dx * (1 + (row % 2 ? perRow - 1 - col : col)), y: 50 + dy * row }; };
      walk.steps.forEach((s, i) => { elements[i].position = at(s.step); });
      cy = graph(box, elements, { name: "preset", fit: true, padding: 30 });
      cy.on("tap", "node", (ev) => { location.href = `/ui/instructions/${encodeURIComponent(ev.target.id())}`; });
      list.innerHTML = "";
      for (const s of walk.steps) {
        const li = document.createElement("li");
        li.textContent = `${s.reached_by || ""}: ${s.label}`;
        list.appendChild(li);
      }
      box.dataset.nodes = cy.nodes().length; box.dataset.steps = cy.edges(".step").length; box.dataset.ready = "1";
      box.cy = cy;
    });
    picker.addEventListener("change", () => { box.dataset.ready = ""; load(); });
    load();
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
    const data = document.getElementById("result-graph-data");
    const box = document.getElementById("result-graph");
    if (data && box) {
      const g = JSON.parse(data.textContent);
      const elements = g.nodes.map((n) => ({ group: "nodes", data: { id: n.id, label: n.label, short: short(n.label) } }))
        .concat(g.edges.map((e, i) => ({ group: "edges", data: { id: "e" + i, source: e.source, target: e.target, w: 0.5 } })));
      box.cy = graph(box, elements);
      box.dataset.nodes = g.nodes.length; box.dataset.ready = "1";
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
    drawNeighbourhood(document.getElementById("neighbourhood"), document.getElementById("graph-stats"));
    drawWalk(document.getElementById("walk-graph"), document.getElementById("walk-component"), document.getElementById("walk-steps"));
    if (document.getElementById("cypher-form")) { console_(); }
  }

  start();
})();
