"""The similarity graph: faces (or people) as nodes, edges only where a match is confident.

An edge joins two faces when one is among the other's ``k`` nearest neighbours *and* their L2
distance is within the calibrated "same person" threshold (:func:`facecluster.explore.similar.
calibrate`). With ``people=True`` each person is one node (drawn with the face nearest their
mean) and two people are joined when any of their faces are, weighted by how many. The layout
is networkx's spring layout with a fixed seed; the graph is written as a self-contained HTML
page (SVG built by a small inline script, chips as data URIs), a PNG and GraphML.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import networkx as nx
import numpy as np

from facecluster.explore.embedding_map import (UNKNOWN_COLOUR, decode_uri, inline_json,
                                               label_colours, normalise, sample_indices,
                                               sampling_note, thumbnail_uri)
from facecluster.explore.similar import (Collection, Threshold, calibrate, given_threshold,
                                         load_store, store_model)
from facecluster.store import Store

GRAPH_LIMIT = 2000  # spring layout is O(n^2) per iteration: larger stores are sampled


def confident_edges(X: np.ndarray, threshold: float, k: int = 5) -> list[tuple[int, int, float]]:
    """Pairs (i, j, distance), i < j, where j is among i's ``k`` nearest neighbours (or i
    among j's) and the distance is within ``threshold``.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    >>> confident_edges(X, 0.5, k=1)
    [(0, 1, 0.1)]
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, np.float64)
    if len(X) < 2:
        return []
    distance, index = NearestNeighbors(n_neighbors=min(k + 1, len(X))).fit(X).kneighbors(X)
    edges: dict[tuple[int, int], float] = {}
    for i in range(len(X)):
        for d, j in zip(distance[i], index[i]):
            if j != i and d <= threshold:
                edges[(min(i, int(j)), max(i, int(j)))] = round(float(d), 4)
    return sorted((i, j, d) for (i, j), d in edges.items())


def face_graph(collection: Collection, chosen: np.ndarray, threshold: float, k: int = 5) -> nx.Graph:
    """A graph of the ``chosen`` faces of ``collection`` joined by confident edges.

    Examples
    --------
    >>> graph = face_graph(collection, np.arange(6), 0.55)  # doctest: +SKIP
    >>> graph.number_of_nodes(), graph.nodes[0]["label"]  # doctest: +SKIP
    (6, 'person_0001')
    """
    graph = nx.Graph()
    for n, i in enumerate(chosen):
        graph.add_node(n, face_id=int(collection.face_ids[i]), label=collection.labels[i] or "",
                       photo=collection.photos[i], faces=1)
    for a, b, d in confident_edges(collection.X[chosen], threshold, k):
        graph.add_edge(a, b, distance=d, weight=1)
    return graph


def people_graph(collection: Collection, chosen: np.ndarray, threshold: float, k: int = 5) -> nx.Graph:
    """One node per person (unknown faces left out), joined when any of their faces are by a
    confident edge; ``weight`` counts those face edges, ``distance`` is the closest."""
    faces = face_graph(collection, chosen, threshold, k)
    labels = {n: attrs["label"] for n, attrs in faces.nodes(data=True) if attrs["label"]}
    graph = nx.Graph()
    for label in sorted(set(labels.values())):
        members = [n for n, l in labels.items() if l == label]
        vectors = collection.X[chosen[members]]
        centre = members[int(np.argmin(np.linalg.norm(vectors - vectors.mean(axis=0), axis=1)))]
        graph.add_node(label, face_id=faces.nodes[centre]["face_id"], label=label,
                       photo=faces.nodes[centre]["photo"], faces=len(members))
    for a, b, attrs in faces.edges(data=True):
        la, lb = labels.get(a), labels.get(b)
        if la and lb and la != lb:
            if graph.has_edge(la, lb):
                graph[la][lb]["weight"] += 1
                graph[la][lb]["distance"] = min(graph[la][lb]["distance"], attrs["distance"])
            else:
                graph.add_edge(la, lb, weight=1, distance=attrs["distance"])
    return graph


def layout(graph: nx.Graph, seed: int = 0) -> dict:
    """Node -> (x, y) in [0, 1]: a seeded spring layout, closer faces pulled harder.

    Examples
    --------
    >>> graph = nx.Graph([(0, 1, {"distance": 0.3}), (1, 2, {"distance": 0.5})])
    >>> layout(graph)[0].shape
    (2,)
    """
    if graph.number_of_nodes() == 0:
        return {}
    threshold = max([d for *_, d in graph.edges(data="distance")] or [1.0])
    pull = {(a, b): 1.1 - d / max(threshold, 1e-6) for a, b, d in graph.edges(data="distance")}
    nx.set_edge_attributes(graph, pull, "pull")
    spread = 3.0 / max(1.0, np.sqrt(graph.number_of_nodes()))
    positions = nx.spring_layout(graph, k=spread, weight="pull", seed=seed, iterations=100)
    nodes = list(positions)
    xy = normalise(np.array([positions[n] for n in nodes]))
    return {n: xy[i] for i, n in enumerate(nodes)}


def write_graph(db: str | os.PathLike, output: str | os.PathLike, people: bool = False,
                     k: int = 5, threshold: float | None = None, limit: int = GRAPH_LIMIT,
                     seed: int = 0, thumb: int = 64) -> dict:
    """Write ``output`` (HTML), and a PNG and a GraphML file beside it; returns a summary.

    Examples
    --------
    >>> write_graph("faces.db", "graph.html")  # doctest: +SKIP
    {'html': 'graph.html', 'png': 'graph.png', 'graphml': 'graph.graphml', 'nodes': 112,
     'edges': 230, 'threshold': {...}, ...}
    """
    with Store(db) as store:
        model = store_model(store)
    collection = load_store(db, model)
    chosen = sample_indices(len(collection.face_ids), limit, seed)
    calibrated = (given_threshold(threshold) if threshold is not None
                  else calibrate(collection.X, collection.labels, model, shots=collection.shots))
    build = people_graph if people else face_graph
    graph = build(collection, chosen, calibrated.value, k)
    positions = layout(graph, seed)
    payload = graph_payload(db, graph, positions, calibrated, thumb, people)
    payload["note"] = sampling_note(len(collection.face_ids), len(chosen), seed)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(graph_html(payload), encoding="utf-8")
    png, graphml = output.with_suffix(".png"), output.with_suffix(".graphml")
    write_graph_png(payload, png)
    write_graphml(graph, positions, graphml)
    return {"html": str(output), "png": str(png), "graphml": str(graphml),
            "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
            "people": people, "k": k, "note": payload["note"], "threshold": calibrated.__dict__}


def graph_payload(db, graph: nx.Graph, positions: dict, threshold: Threshold, thumb: int,
                  people: bool) -> dict:
    """Nodes (with thumbnails and colours) and edges as plain lists for the page and the PNG."""
    colours = label_colours([attrs["label"] or None for _, attrs in graph.nodes(data=True)])
    index = {n: i for i, n in enumerate(graph.nodes)}
    with Store(db) as store:
        nodes = [{"id": str(n), "face_id": a["face_id"], "label": a["label"], "photo": a["photo"],
                  "faces": a["faces"], "x": round(float(positions[n][0]), 5),
                  "y": round(float(positions[n][1]), 5),
                  "colour": colours.get(a["label"], UNKNOWN_COLOUR),
                  "thumb": thumbnail_uri(store.chip(a["face_id"]), thumb)}
                 for n, a in graph.nodes(data=True)]
    edges = [{"a": index[a], "b": index[b], "distance": attrs["distance"], "weight": attrs["weight"]}
             for a, b, attrs in graph.edges(data=True)]
    return {"nodes": nodes, "edges": edges, "people": people, "threshold": threshold.value,
            "threshold_note": threshold.note, "colours": colours}


def write_graphml(graph: nx.Graph, positions: dict, path: Path) -> None:
    """GraphML for Gephi, Cytoscape and friends (node x, y from the layout; edge distance)."""
    out = nx.Graph()
    for n, attrs in graph.nodes(data=True):
        out.add_node(str(n), **attrs, x=float(positions[n][0]), y=float(positions[n][1]))
    for a, b, attrs in graph.edges(data=True):
        out.add_edge(str(a), str(b), distance=float(attrs["distance"]), weight=int(attrs["weight"]))
    nx.write_graphml(out, path)


def write_graph_png(payload: dict, path: Path, max_thumbs: int = 300) -> None:
    """A static matplotlib picture: edges darker for closer pairs, faces on the nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    nodes, edges = payload["nodes"], payload["edges"]
    fig, ax = plt.subplots(figsize=(10, 10), dpi=100)
    segments = [[(nodes[e["a"]]["x"], nodes[e["a"]]["y"]), (nodes[e["b"]]["x"], nodes[e["b"]]["y"])]
                for e in edges]
    shade = [max(0.15, 1 - e["distance"] / max(payload["threshold"], 1e-6)) for e in edges]
    ax.add_collection(LineCollection(segments, colors=[(0.2, 0.2, 0.2, s) for s in shade],
                                     linewidths=1.2, zorder=1))
    ax.scatter([n["x"] for n in nodes], [n["y"] for n in nodes], c=[n["colour"] for n in nodes],
               s=20, zorder=2)
    if len(nodes) <= max_thumbs:
        zoom = 0.5 if len(nodes) <= 60 else 0.28
        for n in nodes:
            box = OffsetImage(decode_uri(n["thumb"]), zoom=zoom)
            ax.add_artist(AnnotationBbox(box, (n["x"], n["y"]), frameon=True, pad=0.1, zorder=3,
                                         bboxprops={"edgecolor": n["colour"], "linewidth": 2}))
    ax.set_xlim(-0.06, 1.06)
    ax.set_ylim(1.06, -0.06)
    ax.set_axis_off()
    what = "people" if payload["people"] else "faces"
    ax.set_title(f"{len(nodes)} {what}, {len(edges)} confident edges "
                 f"(L2 <= {payload['threshold']:.3f})")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def graph_html(payload: dict) -> str:
    """The self-contained page: the payload inlined as JSON, an SVG drawn by a short script."""
    what = "people" if payload["people"] else "faces"
    title = (f"Similarity graph of {payload['note']}: {len(payload['nodes'])} {what}, "
             f"{len(payload['edges'])} confident edges (L2 ≤ {payload['threshold']:.3f})")
    return (GRAPH_TEMPLATE.replace("{{TITLE}}", html.escape(title))
            .replace("{{NOTE}}", html.escape(payload["threshold_note"]))
            .replace("{{DATA}}", inline_json(payload)))


GRAPH_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Face similarity graph</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{margin:0;font:14px system-ui,sans-serif;background:#fbfbfb;color:#222;overflow:hidden}
header{padding:8px 12px;background:#fff;border-bottom:1px solid #ddd}
header small{color:#666}
svg{display:block;width:100vw;height:calc(100vh - 64px);cursor:grab}
line{stroke:#333}
</style></head>
<body data-rendered="no">
<header><b>{{TITLE}}</b><br><small>Threshold: {{NOTE}}. Scroll to zoom, drag to pan,
double-click to reset; hover a face for its photo.</small></header>
<svg id="graph" viewBox="0 0 1000 1000" preserveAspectRatio="xMidYMid meet"
 xmlns="http://www.w3.org/2000/svg"><g id="root"></g></svg>
<script id="data" type="application/json">{{DATA}}</script>
<script>
"use strict";
window.addEventListener("error", e => { document.body.dataset.error = String(e.message); });
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const NS = "http://www.w3.org/2000/svg", svg = document.getElementById("graph");
  const root = document.getElementById("root"), M = 80, S = 1000 - 2 * M;
  const maxFaces = Math.max(1, ...data.nodes.map(n => n.faces));
  const base = Math.max(14, Math.min(90, 480 / Math.sqrt(Math.max(1, data.nodes.length))));
  const size = n => data.people ? base * (0.6 + 0.4 * Math.sqrt(n.faces / maxFaces)) : base;
  const pos = n => [M + n.x * S, M + n.y * S];
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
    parent.appendChild(e);
    return e;
  }
  const edges = el("g", {}, root), faces = el("g", {}, root), defs = el("defs", {}, svg);
  data.edges.forEach(e => {
    const [x1, y1] = pos(data.nodes[e.a]), [x2, y2] = pos(data.nodes[e.b]);
    const line = el("line", {x1, y1, x2, y2, "stroke-width": 1 + Math.min(4, e.weight - 1),
      "stroke-opacity": Math.max(0.15, 1 - e.distance / data.threshold).toFixed(2)}, edges);
    el("title", {}, line).textContent = "L2 " + e.distance.toFixed(3) +
      (data.people ? ", " + e.weight + " face pair(s)" : "");
  });
  data.nodes.forEach((n, i) => {
    const [x, y] = pos(n), r = size(n) / 2, g = el("g", {class: "node"}, faces);
    const clip = el("clipPath", {id: "c" + i}, defs);
    el("circle", {cx: x, cy: y, r}, clip);
    el("image", {href: n.thumb, x: x - r, y: y - r, width: 2 * r, height: 2 * r,
      "clip-path": "url(#c" + i + ")"}, g);
    el("circle", {cx: x, cy: y, r, fill: "none", stroke: n.colour, "stroke-width": 3}, g);
    if (data.people) {
      el("text", {x, y: y + r + 14, "text-anchor": "middle", "font-size": 13}, g).textContent =
        n.label + " (" + n.faces + ")";
    }
    el("title", {}, g).textContent = (n.label || "unknown") +
      (data.people ? " - " + n.faces + " faces" : " - face " + n.face_id) + "\\n" + n.photo;
  });
  let view = [0, 0, 1000, 1000], drag = null;
  const show = () => svg.setAttribute("viewBox", view.join(" "));
  const point = e => {
    const r = svg.getBoundingClientRect(), s = Math.max(view[2] / r.width, view[3] / r.height);
    return [view[0] + (e.clientX - r.left - (r.width - view[2] / s) / 2) * s,
            view[1] + (e.clientY - r.top - (r.height - view[3] / s) / 2) * s, s];
  };
  svg.addEventListener("wheel", e => {
    e.preventDefault();
    const [px, py] = point(e), f = Math.exp(e.deltaY * 0.0015);
    view = [px - (px - view[0]) * f, py - (py - view[1]) * f, view[2] * f, view[3] * f]; show();
  }, {passive: false});
  svg.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY, view[0], view[1]]; });
  window.addEventListener("mouseup", () => { drag = null; });
  svg.addEventListener("mousemove", e => {
    if (!drag) return;
    const s = point(e)[2];
    view[0] = drag[2] - (e.clientX - drag[0]) * s; view[1] = drag[3] - (e.clientY - drag[1]) * s; show();
  });
  svg.addEventListener("dblclick", () => { view = [0, 0, 1000, 1000]; show(); });
  document.body.dataset.nodes = faces.querySelectorAll("image").length;
  document.body.dataset.edges = edges.querySelectorAll("line").length;
  document.body.dataset.rendered = "ok";
})();
</script>
</body></html>
"""
