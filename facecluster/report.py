"""The HTML report (``index.html``) of an export: people, unreadable files, run statistics."""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{margin-bottom:.2em} .muted{color:#666}
.people{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1em}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.6em}
.card img{width:100%;border-radius:4px} .card h3{margin:.3em 0}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
"""


def write_report(output: Path, summary: dict) -> Path:
    """Write ``index.html`` for an export summary (see :func:`facecluster.export.export`)."""
    counts = summary["counts"]
    cards = [_card(p["folder"], p.get("name") or p["folder"], p["faces"], p["photos"],
                   p.get("screen_seconds")) for p in summary["people"]]
    if summary["unknown_faces"]:
        cards.append(_card("unknown", "Unknown", summary["unknown_faces"], None))
    errors = "".join(f"<tr><td>{html.escape(path)}</td><td>{html.escape(why or '')}</td></tr>"
                     for path, why in summary["unreadable"])
    runs = "".join(
        f"<tr><td>{html.escape(r['command'])}</td><td>{r['seconds']} s</td>"
        f"<td><code>{html.escape(_brief(r['params']))}</code></td></tr>" for r in summary["runs"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facecluster: {len(summary['people'])} people</title>
<style>{STYLE}</style></head><body>
<h1>{len(summary['people'])} people</h1>
<p class="muted">{counts['faces']} faces in {counts['photos']} photos;
{summary['unknown_faces']} faces unknown; {counts['unreadable']} unreadable files.
Made {datetime.now():%Y-%m-%d %H:%M}.</p>
<div class="people">{''.join(cards)}</div>
{_timeline(summary)}
<h2>Unreadable files ({counts['unreadable']})</h2>
{f'<table><tr><th>file</th><th>why</th></tr>{errors}</table>' if errors else '<p>None.</p>'}
<h2>Run statistics</h2>
<table><tr><th>step</th><th>time</th><th>settings</th></tr>{runs}</table>
</body></html>
"""
    path = output / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _card(folder: str, title: str, faces: int, photos: int | None, seconds: float | None = None) -> str:
    photos_text = f", {photos} photos" if photos is not None else ""
    screen_text = f", {seconds:.1f} s on screen" if seconds is not None else ""
    return (f'<div class="card"><a href="{html.escape(folder)}/"><img src="{html.escape(folder)}/montage.jpg"'
            f' alt="{html.escape(title)}"></a><h3>{html.escape(title)}</h3>'
            f'<span class="muted">{faces} faces{photos_text}{screen_text}</span></div>')


def _timeline(summary: dict) -> str:
    """The video timeline section (empty without videos)."""
    if not summary.get("timeline_png"):
        return ""
    return ('<h2>Timeline</h2><p class="muted">Who is on screen when; per track in '
            '<a href="timeline.csv">timeline.csv</a>.</p>'
            f'<img src="{html.escape(summary["timeline_png"])}" alt="timeline" style="max-width:100%">')


def _brief(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
