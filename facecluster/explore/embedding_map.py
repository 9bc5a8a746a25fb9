"""A 2-D map of the face embeddings (PCA, t-SNE or UMAP), as a self-contained HTML page and a PNG.

The page needs no network: the points are inlined as JSON, the face thumbnails as base64 data
URIs, and a small hand-written canvas script draws them (dots coloured by person; faces shown
on hover and drawn in place once zoomed in). Above ``limit`` faces a seeded sample is mapped,
and both the page and the summary say so.
"""

from __future__ import annotations

import base64
import colorsys
import html
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from facecluster.explore.similar import Collection, load_store, store_model
from facecluster.store import Store

METHODS = ("pca", "tsne", "umap")
MAP_LIMIT = 20_000
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
           "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939"]
UNKNOWN_COLOUR = "#9a9a9a"


class MapError(ValueError):
    """The map cannot be made as asked (unknown method, UMAP missing, empty store)."""


# -- shared with the graph page ---------------------------------------------------------------
def sample_indices(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """All of ``range(n)``, or a seeded sorted sample of ``limit`` of them.

    Examples
    --------
    >>> sample_indices(5, 10)
    array([0, 1, 2, 3, 4])
    >>> len(sample_indices(50_000, 20_000))
    20000
    """
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def thumbnail_uri(chip_jpeg: bytes, size: int = 64, quality: int = 80) -> str:
    """A face chip shrunk to ``size`` px as a ``data:image/jpeg;base64,...`` URI."""
    image = Image.open(io.BytesIO(chip_jpeg)).convert("RGB").resize((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_uri(uri: str) -> np.ndarray:
    """The RGB pixels of a data URI made by :func:`thumbnail_uri` (for the PNG pictures)."""
    data = base64.b64decode(uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def label_colours(labels: list[str | None]) -> dict[str, str]:
    """A colour per label, biggest groups first; more than 20 labels get golden-angle hues.

    Examples
    --------
    >>> label_colours(["a", "b", "a", None])
    {'a': '#1f77b4', 'b': '#ff7f0e'}
    """
    counts: dict[str, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    order = sorted(counts, key=lambda k: (-counts[k], k))
    return {label: PALETTE[i] if i < len(PALETTE) else _hue(i) for i, label in enumerate(order)}


def _hue(i: int) -> str:
    r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.45, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def inline_json(data) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def normalise(xy: np.ndarray) -> np.ndarray:
    """Scale 2-D points into [0, 1] keeping their aspect ratio (y grows downwards on screen).

    Examples
    --------
    >>> normalise(np.array([[0.0, 0.0], [2.0, 1.0]]))
    array([[0.  , 0.25],
           [1.  , 0.75]])
    """
    xy = np.asarray(xy, np.float64)
    if not len(xy):
        return xy.reshape(0, 2)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = max(float((high - low).max()), 1e-12)
    return (xy - low) / span + (1 - (high - low) / span) / 2


# -- projection -------------------------------------------------------------------------------
def project(X: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """Project embeddings to 2-D with ``pca``, ``tsne`` or ``umap`` (UMAP needs umap-learn).

    Raises
    ------
    MapError
        For an unknown method, or ``umap`` when umap-learn is not installed.

    Examples
    --------
    >>> project(np.random.default_rng(0).normal(size=(40, 128)), "pca").shape
    (40, 2)
    """
    X = np.asarray(X, np.float64)
    if method not in METHODS:
        raise MapError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if len(X) < 3:  # too few for any neighbourhood method: lay them out on a line
        return np.column_stack([np.arange(len(X), dtype=float), np.zeros(len(X))])
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(X)
    if method == "tsne":
        from sklearn.manifold import TSNE

        if len(X) > 1000 and X.shape[1] > 50:  # the usual speed-up: neighbours found in 50-D PCA
            from sklearn.decomposition import PCA

            X = PCA(n_components=50, random_state=seed).fit_transform(X)
        perplexity = float(min(30, max(2, (len(X) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)
    return _umap(X, seed)


def _umap(X: np.ndarray, seed: int) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise MapError("--method umap needs umap-learn: pip install umap-learn "
                       "(or use --method tsne or pca)") from None
    neighbours = min(15, len(X) - 1)
    return umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed).fit_transform(X)


# -- the map ----------------------------------------------------------------------------------
def map_payload(db: str | os.PathLike, method: str = "tsne", limit: int = MAP_LIMIT, seed: int = 0,
                thumb: int = 64) -> dict:
    """Everything the page and the PNG show: normalised points, labels, colours, thumbnails.

    Examples
    --------
    >>> payload = map_payload("faces.db", "pca")  # doctest: +SKIP
    >>> payload["shown"], payload["total"], payload["points"][0].keys()  # doctest: +SKIP
    (112, 112, dict_keys(['id', 'x', 'y', 'label', 'photo', 'thumb']))
    """
    if method not in METHODS:
        raise MapError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    with Store(db) as store:
        model = store_model(store)
    collection = load_store(db, model)
    chosen = sample_indices(len(collection.face_ids), limit, seed)
    xy = normalise(project(collection.X[chosen], method, seed))
    colours = label_colours([collection.labels[i] for i in chosen])
    with Store(db) as store:
        points = [_point(store, collection, i, x, y, thumb) for i, (x, y) in zip(chosen, xy)]
    return {"method": method, "model": model, "total": len(collection.face_ids), "shown": len(chosen),
            "seed": seed, "note": sampling_note(len(collection.face_ids), len(chosen), seed),
            "colours": colours, "unknown_colour": UNKNOWN_COLOUR, "points": points}


def _point(store: Store, collection: Collection, i: int, x: float, y: float, thumb: int) -> dict:
    return {"id": int(collection.face_ids[i]), "x": round(float(x), 5), "y": round(float(y), 5),
            "label": collection.labels[i], "photo": collection.photos[i],
            "thumb": thumbnail_uri(store.chip(collection.face_ids[i]), thumb)}


def sampling_note(total: int, shown: int, seed: int) -> str:
    """Says whether the faces were sampled.

    Examples
    --------
    >>> sampling_note(30_000, 20_000, 0)
    'a random sample of 20,000 of the 30,000 faces (seed 0)'
    """
    if shown >= total:
        return f"all {total:,} faces"
    return f"a random sample of {shown:,} of the {total:,} faces (seed {seed})"


def write_map(db: str | os.PathLike, output: str | os.PathLike, method: str = "tsne",
                  limit: int = MAP_LIMIT, seed: int = 0, thumb: int = 64) -> dict:
    """Write the map page to ``output`` and a PNG beside it; returns a summary.

    Examples
    --------
    >>> write_map("faces.db", "map.html", "tsne")  # doctest: +SKIP
    {'html': 'map.html', 'png': 'map.png', 'method': 'tsne', 'shown': 112, 'total': 112, ...}
    """
    payload = map_payload(db, method, limit, seed, thumb)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(map_html(payload), encoding="utf-8")
    png = output.with_suffix(".png")
    write_map_png(payload, png)
    people = len(payload["colours"])
    return {"html": str(output), "png": str(png), "method": method, "shown": payload["shown"],
            "total": payload["total"], "people": people, "note": payload["note"]}


def write_map_png(payload: dict, path: Path, max_thumbs: int = 400) -> None:
    """A static matplotlib picture of the map: coloured dots, faces drawn when few enough."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    points = payload["points"]
    fig, ax = plt.subplots(figsize=(10, 10), dpi=100)
    colours = [payload["colours"].get(p["label"], UNKNOWN_COLOUR) for p in points]
    ax.scatter([p["x"] for p in points], [p["y"] for p in points], c=colours, s=12, zorder=1)
    if len(points) <= max_thumbs:
        zoom = 0.55 if len(points) <= 100 else 0.3
        for p, colour in zip(points, colours):
            box = OffsetImage(decode_uri(p["thumb"]), zoom=zoom)
            ax.add_artist(AnnotationBbox(box, (p["x"], p["y"]), frameon=True, pad=0.1,
                                         bboxprops={"edgecolor": colour, "linewidth": 2}))
    for label, colour in list(payload["colours"].items())[:20]:
        ax.scatter([], [], c=colour, label=label)
    if any(p["label"] is None for p in points):
        ax.scatter([], [], c=UNKNOWN_COLOUR, label="unknown")
    if points:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(1.05, -0.05)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{payload['method'].upper()} map of {payload['note']}")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def map_html(payload: dict) -> str:
    """The self-contained page: thumbnails as hidden ``<img>`` elements, points as JSON."""
    points = payload["points"]
    thumbs = "".join(f'<img id="t{i}" alt="" src="{p["thumb"]}">' for i, p in enumerate(points))
    data = {**payload, "points": [{k: v for k, v in p.items() if k != "thumb"} for p in points]}
    title = (f"{payload['method'].upper()} map of {payload['note']}, "
             f"{len(payload['colours'])} people ({payload['model']})")
    return (MAP_TEMPLATE.replace("{{TITLE}}", html.escape(title))
            .replace("{{THUMBS}}", thumbs).replace("{{DATA}}", inline_json(data)))


MAP_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Face map</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{margin:0;font:14px system-ui,sans-serif;background:#fbfbfb;color:#222;overflow:hidden}
header{padding:8px 12px;background:#fff;border-bottom:1px solid #ddd}
header small{color:#666}
#legend{position:absolute;right:8px;top:52px;max-height:70vh;overflow:auto;background:#fffd;
 border:1px solid #ddd;padding:6px 8px;font-size:12px}
#legend span{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:5px}
#map{display:block;cursor:grab}
#tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #888;padding:4px;
 font-size:12px;display:none;max-width:260px;word-break:break-all}
#tip img{display:block;width:112px;height:112px;margin-bottom:3px}
#thumbs{display:none}
</style></head>
<body data-rendered="no">
<header><b>{{TITLE}}</b><br><small>Scroll to zoom (faces are drawn once zoomed in), drag to pan,
double-click to reset; hover a point to see its face.</small></header>
<div id="legend"></div><canvas id="map"></canvas><div id="tip"></div>
<div id="thumbs">{{THUMBS}}</div>
<script id="data" type="application/json">{{DATA}}</script>
<script>
"use strict";
window.addEventListener("error", e => { document.body.dataset.error = String(e.message); });
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const pts = data.points, canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
  const tip = document.getElementById("tip"), MAX_THUMBS = 300;
  const colour = p => data.colours[p.label] || data.unknown_colour;
  const thumb = i => document.getElementById("t" + i);
  let scale = 1, ox = 0, oy = 0, W = 0, H = 0, drawn = 0;

  function legend() {
    const counts = {};
    pts.forEach(p => { const k = p.label || "unknown"; counts[k] = (counts[k] || 0) + 1; });
    const el = document.getElementById("legend");
    Object.keys(data.colours).concat(counts.unknown ? ["unknown"] : []).forEach(k => {
      const row = document.createElement("div"), dot = document.createElement("span");
      dot.style.background = data.colours[k] || data.unknown_colour;
      row.appendChild(dot);
      row.appendChild(document.createTextNode(k + " (" + (counts[k] || 0) + ")"));
      el.appendChild(row);
    });
  }
  function screen(p) {
    const s = Math.min(W, H) * 0.9 * scale;
    return [W / 2 + (p.x - 0.5) * s + ox, H / 2 + (p.y - 0.5) * s + oy];
  }
  function draw() {
    W = canvas.width = window.innerWidth;
    H = canvas.height = Math.max(200, window.innerHeight - canvas.offsetTop);
    ctx.clearRect(0, 0, W, H);
    const xy = pts.map(screen);
    const visible = xy.filter(([x, y]) => x > -50 && y > -50 && x < W + 50 && y < H + 50).length;
    const size = visible <= MAX_THUMBS ? Math.min(112, Math.max(28, 30 * Math.sqrt(scale))) : 0;
    drawn = 0;
    pts.forEach((p, i) => {
      const [x, y] = xy[i], img = thumb(i);
      if (size && img.complete && img.naturalWidth) {
        ctx.drawImage(img, x - size / 2, y - size / 2, size, size);
        ctx.strokeStyle = colour(p); ctx.lineWidth = 3;
        ctx.strokeRect(x - size / 2, y - size / 2, size, size);
        drawn++;
      } else {
        ctx.fillStyle = colour(p); ctx.beginPath(); ctx.arc(x, y, 3.5, 0, 2 * Math.PI); ctx.fill();
      }
    });
    document.body.dataset.thumbsDrawn = drawn;
  }
  function nearest(mx, my) {
    let best = -1, bestD = 12 * 12;
    pts.forEach((p, i) => {
      const [x, y] = screen(p), d = (x - mx) ** 2 + (y - my) ** 2;
      if (d < bestD) { best = i; bestD = d; }
    });
    return best;
  }
  let drag = null;
  canvas.addEventListener("wheel", e => {
    e.preventDefault();
    const f = Math.exp(-e.deltaY * 0.0015), r = canvas.getBoundingClientRect();
    const mx = e.clientX - r.left - W / 2, my = e.clientY - r.top - H / 2;
    ox = mx - (mx - ox) * f; oy = my - (my - oy) * f; scale *= f; draw();
  }, {passive: false});
  canvas.addEventListener("mousedown", e => { drag = [e.clientX - ox, e.clientY - oy]; });
  window.addEventListener("mouseup", () => { drag = null; });
  canvas.addEventListener("dblclick", () => { scale = 1; ox = oy = 0; draw(); });
  canvas.addEventListener("mousemove", e => {
    if (drag) { ox = e.clientX - drag[0]; oy = e.clientY - drag[1]; draw(); return; }
    const r = canvas.getBoundingClientRect(), i = nearest(e.clientX - r.left, e.clientY - r.top);
    if (i < 0) { tip.style.display = "none"; return; }
    const p = pts[i];
    tip.replaceChildren(thumb(i).cloneNode(), document.createTextNode(
      (p.label || "unknown") + " - face " + p.id), document.createElement("br"),
      document.createTextNode(p.photo));
    tip.style.left = (e.pageX + 14) + "px"; tip.style.top = (e.pageY + 14) + "px";
    tip.style.display = "block";
  });
  window.addEventListener("resize", draw);
  legend();
  draw();
  window.addEventListener("load", () => {
    draw();
    document.body.dataset.points = pts.length;
    document.body.dataset.rendered = "ok";
  });
})();
</script>
</body></html>
"""
