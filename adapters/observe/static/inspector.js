// The Headrace inspector page: polls api/graphs every second and shows each graph's state,
// last reload, picture (SVG drawn by the engine, fetched once per plan), node counters and
// rates, and edge fill bars. Numbers are shown as `engine ctl status` shows them. No library,
// nothing fetched from anywhere but the engine. Every text is set as text, never as HTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const SHORT_HASH = "sha256:".length + 12;
  const token = new URLSearchParams(window.location.search).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const graphs = new Map(); // file -> {section, link, planHash, loading, last, previous}
  let counter = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child);
    }
    return node;
  }

  function moment(epoch) {
    if (!epoch) {
      return "-";
    }
    return new Date(epoch * 1000).toISOString().slice(0, 19) + "Z";
  }

  function shortHash(hash) {
    return hash ? hash.slice(0, SHORT_HASH) : "-";
  }

  function rate(now, before, seconds) {
    if (before === undefined || seconds <= 0 || now < before) {
      return "-";
    }
    const perSecond = (now - before) / seconds;
    return perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
  }

  function setStatus(text, bad) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.className = bad ? "status bad" : "status";
  }

  function createGraph(file) {
    counter += 1;
    const id = "graph-" + counter;
    const section = el("section", { class: "graph", id: id, "data-file": file },
      el("h2", {}, el("span", { class: "name" }), " ", el("span", { class: "badge" })),
      el("dl", { class: "facts" }),
      el("pre", { class: "failure", hidden: "" }),
      el("ul", { class: "problems", hidden: "" }),
      el("div", { class: "picture" }),
      el("table", { class: "nodes" },
        el("thead", {}, row("th", ["node", "type", "state", "in", "out", "errors", "busy s", "in/s", "out/s"])),
        el("tbody")),
      el("table", { class: "edges" },
        el("thead", {}, row("th", ["edge", "policy", "depth/cap", "fill", "enqueued", "dropped", "coalesced",
          "high water", "blocked s"])),
        el("tbody")));
    document.getElementById("graphs").append(section);
    const link = el("li", {}, el("a", { href: "#" + id }), " ", el("span", { class: "badge" }));
    document.getElementById("graph-list").append(link);
    const entry = { section: section, link: link, planHash: "", loading: false, last: null, previous: null };
    graphs.set(file, entry);
    return entry;
  }

  function row(cell, values, fields) {
    const tr = el("tr");
    values.forEach(function (value, i) {
      const attrs = fields ? { "data-field": fields[i] } : {};
      tr.append(el(cell, attrs, String(value)));
    });
    return tr;
  }

  function fact(list, name, value) {
    list.append(el("dt", {}, name), el("dd", {}, value || "-"));
  }

  function updateGraph(entry, graph, takenAt) {
    const section = entry.section;
    section.dataset.graph = graph.name;
    section.dataset.state = graph.state;
    section.querySelector("h2 .name").textContent = graph.name || graph.file;
    for (const badge of [section.querySelector("h2 .badge"), entry.link.querySelector(".badge")]) {
      badge.textContent = graph.state;
      badge.className = "badge " + graph.state;
    }
    entry.link.querySelector("a").textContent = graph.name || graph.file;
    const facts = section.querySelector(".facts");
    facts.replaceChildren();
    fact(facts, "file", graph.file);
    fact(facts, "plan", shortHash(graph.plan_hash));
    fact(facts, "loaded at", moment(graph.loaded_at));
    let result = graph.last_result || "-";
    if (graph.last_reload_at) {
      result += " at " + moment(graph.last_reload_at);
    }
    fact(facts, "last result", result);
    if (graph.last_nodes) {
      fact(facts, "nodes", graph.last_nodes);
    }
    const failure = section.querySelector(".failure");
    failure.textContent = graph.failure ? "failure: " + graph.failure : "";
    failure.hidden = !graph.failure;
    const problems = section.querySelector(".problems");
    problems.replaceChildren(...graph.problems.map(function (p) { return el("li", {}, p); }));
    problems.hidden = graph.problems.length === 0;

    const before = entry.previous;
    const seconds = before ? takenAt - before.takenAt : 0;
    const rates = {};
    const nodeRows = graph.nodes.map(function (n) {
      const was = before ? before.nodes[n.name] : undefined;
      rates[n.name] = rate(n.out, was && was.out, seconds);
      const tr = row("td", [n.name, n.type, n.state, n.in, n.out, n.errors, n.busy_s.toFixed(3),
        rate(n.in, was && was.in, seconds), rates[n.name]],
      ["name", "type", "state", "in", "out", "errors", "busy_s", "in_rate", "out_rate"]);
      tr.dataset.node = n.name;
      return tr;
    });
    section.querySelector("table.nodes tbody").replaceChildren(...nodeRows);
    const edgeRows = graph.edges.map(function (e) {
      const tr = row("td", [e.id, e.policy + (e.durable ? " durable" : ""), e.depth + "/" + e.capacity, "",
        e.enqueued, e.dropped, e.coalesced, e.high_water, e.blocked_s.toFixed(3)],
      ["id", "policy", "depth", "fill", "enqueued", "dropped", "coalesced", "high_water", "blocked_s"]);
      tr.dataset.edge = e.id;
      const bar = el("span", { class: "meter" }, el("span", { class: "level " + e.level }));
      bar.firstChild.style.width = Math.min(e.fill * 100, 100).toFixed(1) + "%";
      tr.children[3].append(bar, " " + Math.round(e.fill * 100) + "%");
      return tr;
    });
    section.querySelector("table.edges tbody").replaceChildren(...edgeRows);
    section.querySelector("table.edges").hidden = graph.edges.length === 0;
    section.querySelector("table.nodes").hidden = graph.nodes.length === 0;

    const nodes = {};
    for (const n of graph.nodes) {
      nodes[n.name] = { in: n.in, out: n.out };
    }
    entry.previous = { takenAt: takenAt, nodes: nodes };
    entry.last = { graph: graph, rates: rates };
    updatePicture(entry);
    if (graph.plan_hash !== entry.planHash) {
      loadPicture(entry, graph.file, graph.plan_hash);
    }
  }

  function updatePicture(entry) {
    const svg = entry.section.querySelector(".picture svg");
    if (!svg || !entry.last) {
      return;
    }
    for (const n of entry.last.graph.nodes) {
      const group = svg.querySelector('g[data-node="' + CSS.escape(n.name) + '"]');
      if (group) {
        group.querySelector("text.counts").textContent = "in " + n.in + " · out " + n.out;
        group.querySelector("text.rate").textContent = entry.last.rates[n.name] + "/s";
      }
    }
    for (const e of entry.last.graph.edges) {
      const group = svg.querySelector('g[data-edge="' + CSS.escape(e.id) + '"]');
      if (!group) {
        continue;
      }
      const bar = group.querySelector("rect.bar");
      const fill = group.querySelector("rect.fill");
      fill.setAttribute("width", (Number(bar.getAttribute("width")) * Math.min(e.fill, 1)).toFixed(1));
      fill.setAttribute("class", "fill " + e.level);
    }
  }

  async function loadPicture(entry, file, planHash) {
    if (entry.loading) {
      return;
    }
    const picture = entry.section.querySelector(".picture");
    if (!planHash) {
      picture.replaceChildren();
      entry.planHash = "";
      return;
    }
    entry.loading = true;
    try {
      const response = await fetch("api/picture?file=" + encodeURIComponent(file), { headers: headers, cache: "no-store" });
      if (response.ok) {
        const text = await response.text();
        const parsed = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
        if (parsed && parsed.nodeName === "svg") {
          picture.replaceChildren(document.importNode(parsed, true));
          entry.planHash = response.headers.get("X-Plan-Hash") || planHash;
          updatePicture(entry);
        }
      }
    } finally {
      entry.loading = false;
    }
  }

  function render(data) {
    const seen = new Set();
    for (const graph of data.graphs) {
      seen.add(graph.file);
      const entry = graphs.get(graph.file) || createGraph(graph.file);
      updateGraph(entry, graph, data.taken_at);
    }
    for (const [file, entry] of graphs) {
      if (!seen.has(file)) {
        entry.section.remove();
        entry.link.remove();
        graphs.delete(file);
      }
    }
    const failures = data.failures.map(function (f) {
      return el("li", {}, el("time", {}, moment(f.time)), " ", el("strong", {}, f.graph || f.file), " ", f.detail);
    });
    document.getElementById("failures").replaceChildren(...failures);
    document.getElementById("no-failures").hidden = failures.length > 0;
    document.body.dataset.graphs = String(data.graphs.length);
  }

  async function poll() {
    try {
      const response = await fetch("api/graphs", { headers: headers, cache: "no-store" });
      if (response.status === 401) {
        setStatus("unauthorized: open this page as /?token=TOKEN with the engine's control token", true);
      } else if (!response.ok) {
        setStatus("the engine did not answer (HTTP " + response.status + "); retrying", true);
      } else {
        const data = await response.json();
        render(data);
        setStatus(data.graphs.length + " graphs · updated " + moment(data.time));
      }
    } catch (error) {
      setStatus("cannot reach the engine (" + error.message + "); retrying", true);
    }
    window.setTimeout(poll, POLL_MS);
  }

  poll();
}());
