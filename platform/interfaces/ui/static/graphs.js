// gradwalk's graph drawings (cytoscape.js): an instruction's neighbourhood, a version's walk and the
// Cypher console's result. Every node shows a short label of its text, and hovering it shows more.
// Loaded after ui.js (whose fetch helper it uses) on the pages that draw; like ui.js it runs no
// inline script or style, so the content security policy holds.
"use strict";
(() => {
  const { get } = window.gradwalk;

  const LABELLED = 16;
  const INK = "#1d2430", BLUE = "#3b6ea8", AMBER = "#e0a030", GREY = "#9aa6b8";
  const STYLE = [
    { selector: "node", style: { "background-color": BLUE, width: 12, height: 12, label: "data(label)",
      "font-size": 11, color: INK, "text-wrap": "wrap", "text-max-width": 130, "text-valign": "bottom",
      "text-margin-y": 3, "text-background-color": "#fff", "text-background-opacity": 0.85,
      "text-background-padding": 1, "min-zoomed-font-size": 6 } },
    { selector: "node.center", style: { "background-color": INK, width: 22, height: 22, "font-weight": 600 } },
    { selector: "node.anchor", style: { "background-color": AMBER, width: 18, height: 18, "font-weight": 600 } },
    { selector: "node.quiet", style: { label: "" } },
    { selector: "node.hover", style: { label: "data(label)", "background-color": "#c0392b", "z-index": 10 } },
    { selector: "edge", style: { width: "data(thick)", "line-color": GREY, "curve-style": "straight", opacity: 0.55 } },
    { selector: "edge.spoke", style: { width: 1, "line-color": BLUE, "line-style": "dotted", opacity: 0.6 } },
    { selector: "edge.step", style: { width: 3, "line-color": AMBER, "target-arrow-shape": "triangle",
      "target-arrow-color": AMBER, "arrow-scale": 0.9, opacity: 1, "z-index": 5 } },
    { selector: "edge.jump", style: { "line-style": "dashed" } },
    { selector: "edge.other", style: { "curve-style": "unbundled-bezier", "control-point-distances": "data(bend)",
      "control-point-weights": 0.5, opacity: 0.35 } },
  ];

  function graph(box, elements, layout) {
    return cytoscape({ container: box, elements, style: STYLE, wheelSensitivity: 0.3, maxZoom: 2,
      layout: layout || { name: "cose", animate: false, nodeRepulsion: 9000, idealEdgeLength: 90 } });
  }

  // Line widths from 0.6 to 4 px over the drawn weights, so the strongest pair stands out whatever
  // range of cosines the graph's features give.
  const thickness = (weights) => {
    const lo = Math.min(...weights), span = Math.max(...weights) - lo || 1;
    return (w) => 0.6 + 3.4 * (w - lo) / span;
  };

  // One tip per drawing box, beside it in the page: filled from the hovered node's data by `describe`.
  function hoverTips(box, cy, describe) {
    let tip = document.getElementById(box.id + "-tip");
    if (!tip) {
      tip = document.createElement("div");
      tip.id = box.id + "-tip"; tip.className = "graph-tip";
      box.after(tip);
    }
    tip.hidden = true;
    cy.on("mouseover", "node", (ev) => {
      const [head, body] = describe(ev.target.data());
      const title = document.createElement("b"), text = document.createElement("span");
      title.textContent = head; text.textContent = body;
      tip.replaceChildren(title, text);
      const at = ev.target.renderedPosition(), frame = box.getBoundingClientRect();
      // Below the node's label, so the tip covers neither.
      tip.style.left = Math.round(window.scrollX + frame.left + Math.max(0, Math.min(at.x - 60, frame.width - 300))) + "px";
      tip.style.top = Math.round(window.scrollY + frame.top + at.y + 48) + "px";
      tip.hidden = false; ev.target.addClass("hover");
    });
    cy.on("mouseout", "node", (ev) => { tip.hidden = true; ev.target.removeClass("hover"); });
  }

  // The row in the middle; the neighbours around it in the server's ring order (each beside the one
  // it is most like), nearer the stronger its edge to the row (by rank: cosines often differ in the
  // third decimal only), so nearer reads as more similar.
  function radial(data, width, height) {
    const near = data.nodes.slice(1), slot = new Map(data.ring.map((id, i) => [id, i]));
    const at = { [data.center]: { x: width / 2, y: height / 2 } };
    near.forEach((n, rank) => {
      const turn = -Math.PI / 2 + 2 * Math.PI * slot.get(n.id) / near.length;
      const out = 0.45 + 0.5 * rank / Math.max(1, near.length - 1);
      at[n.id] = { x: width / 2 + Math.cos(turn) * out * (width / 2 - 80), y: height / 2 + Math.sin(turn) * out * (height / 2 - 40) };
    });
    return at;
  }

  function drawNeighbourhood(box, count, floor, stats) {
    if (!box) { return; }
    const shown = document.getElementById("floor-value");
    let asked = 0, cy = null;
    const load = (withFloor) => {
      const mine = ++asked;
      box.dataset.ready = "";
      const query = new URLSearchParams({ graph: box.dataset.graph, n: count.value });
      if (withFloor) { query.set("floor", floor.value); }
      get(`/ui/instructions/${encodeURIComponent(box.dataset.center)}/neighbourhood?${query}`).then((data) => {
        if (mine !== asked) { return; }  // a later move of the controls is on its way
        draw(data);
      });
    };
    const draw = (data) => {
      const at = radial(data, box.clientWidth, box.clientHeight), wide = thickness(data.edges.map((e) => e.w));
      // Past LABELLED neighbours the weaker ones' labels would pile up: they show theirs when hovered.
      const elements = data.nodes.map((n, i) => ({ group: "nodes", position: at[n.id],
        classes: i ? (i > LABELLED ? "quiet" : "") : "center", data: { id: n.id, label: n.label, text: n.text, w: n.w } }));
      for (const n of data.nodes.slice(1)) {
        elements.push({ group: "edges", classes: "spoke", data: { id: data.center + "~" + n.id, source: data.center,
          target: n.id, w: n.w } });
      }
      for (const e of data.edges) {
        elements.push({ group: "edges", data: { id: e.source + "~" + e.target, source: e.source, target: e.target,
          w: e.w, thick: wide(e.w) } });
      }
      if (cy) { cy.destroy(); }
      cy = graph(box, elements, { name: "preset", fit: true, padding: 40 });
      cy.on("tap", "node", (ev) => {
        location.href = `/ui/instructions/${encodeURIComponent(ev.target.id())}?graph=${encodeURIComponent(data.graph)}`;
      });
      hoverTips(box, cy, (n) => [n.w === null ? "this row" : `cosine ${n.w.toFixed(3)} to this row`, n.text]);
      if (data.range) {
        floor.min = Math.floor(data.range[0] * 1000) / 1000; floor.max = Math.ceil(data.range[1] * 1000) / 1000;
      }
      floor.disabled = !data.range;
      floor.value = data.floor;
      shown.textContent = data.range ? Number(data.floor).toFixed(3) : "no edges among the neighbours";
      stats.textContent = `${data.nodes.length - 1} neighbours; ${data.edges.length} of the ${data.pairs} pairs ` +
        "among them are at or above the floor.";
      box.dataset.floor = data.floor; box.cy = cy; box.dataset.ready = "1";
    };
    count.form.addEventListener("submit", (ev) => ev.preventDefault());  // Enter redraws; it never reloads
    count.addEventListener("change", () => { if (count.checkValidity()) { load(true); } });
    floor.addEventListener("input", () => { shown.textContent = Number(floor.value).toFixed(3); });
    floor.addEventListener("change", () => load(true));
    load(false);
  }

  function drawWalk(box, picker, list) {
    if (!box || !picker) { return; }
    let cy = null;
    const load = () => get(box.dataset.url + picker.value).then((walk) => {
      const elements = walk.steps.map((s) => ({ group: "nodes", classes: s.reached_by === "anchor" ? "anchor" : "",
        data: { id: s.id, label: `${s.step}. ${s.label}`, text: s.text, step: s.step, how: s.reached_by } }));
      const onPath = new Set();
      for (const s of walk.steps) {
        if (!s.predecessor) { continue; }
        onPath.add([s.predecessor, s.id].sort().join("~"));
        elements.push({ group: "edges", classes: "step" + (s.reached_by === "fallback" ? " jump" : ""),
          data: { id: s.predecessor + ">" + s.id, source: s.predecessor, target: s.id } });
      }
      // Other edges arc off the path, higher the more steps they skip, so none hides behind it.
      const wide = thickness(walk.edges.map((e) => e.w)), step = new Map(walk.steps.map((s) => [s.id, s.step]));
      for (const e of walk.edges) {
        const id = e.source + "~" + e.target, [a, b] = [e.source, e.target].sort((x, y) => step.get(x) - step.get(y));
        if (!onPath.has(id)) {
          elements.push({ group: "edges", classes: "other", data: { id, source: a, target: b, w: e.w,
            thick: wide(e.w), bend: -14 * (step.get(b) - step.get(a)) } });
        }
      }
      if (cy) { cy.destroy(); }
      // The path snakes across the box in step order: anchor top left, each row of 6 steps turning back.
      // The box is as tall as the rows it needs, up to five; a longer walk is zoomed out to fit.
      const perRow = 6, dx = box.clientWidth / perRow, dy = 130, rows = Math.ceil(walk.steps.length / perRow);
      const at = (step) => { const row = Math.floor(step / perRow), col = step % perRow;
        return { x: dx * (0.5 + (row % 2 ? perRow - 1 - col : col)), y: 90 + dy * row }; };
      walk.steps.forEach((s, i) => { elements[i].position = at(s.step); });
      box.style.height = Math.min(5, rows) * dy + 60 + "px";  // a CSSOM write, which the policy allows
      cy = graph(box, elements, { name: "preset", fit: rows > 5, padding: 30 });
      cy.on("tap", "node", (ev) => { location.href = `/ui/instructions/${encodeURIComponent(ev.target.id())}`; });
      hoverTips(box, cy, (n) => [`step ${n.step}, reached by ${n.how || "?"}`, n.text]);
      list.replaceChildren(...walk.steps.map((s) => {
        const li = document.createElement("li");
        li.textContent = `${s.reached_by || ""}: ${s.label}`;
        return li;
      }));
      box.dataset.nodes = cy.nodes().length; box.dataset.steps = cy.edges(".step").length; box.dataset.ready = "1";
      box.cy = cy;
    });
    picker.addEventListener("change", () => { box.dataset.ready = ""; load(); });
    load();
  }

  function drawResult(box, data) {
    if (!box || !data) { return; }
    const g = JSON.parse(data.textContent);
    const elements = g.nodes.map((n) => ({ group: "nodes", data: { id: n.id, label: n.label, text: n.label } }))
      .concat(g.edges.map((e, i) => ({ group: "edges", data: { id: "e" + i, source: e.source, target: e.target, thick: 1 } })));
    box.cy = graph(box, elements);
    hoverTips(box, box.cy, (n) => [n.id, n.text]);
    box.dataset.nodes = g.nodes.length; box.dataset.ready = "1";
  }

  const byId = (id) => document.getElementById(id);
  drawNeighbourhood(byId("neighbourhood"), byId("neighbours"), byId("floor"), byId("graph-stats"));
  drawWalk(byId("walk-graph"), byId("walk-component"), byId("walk-steps"));
  drawResult(byId("result-graph"), byId("result-graph-data"));
})();
