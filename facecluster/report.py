"""The HTML report (``index.html``) of an export: people, unreadable files, run settings.

A static page beside the person folders: a card per person (id, folder, counts, montage), the
unknown faces, the video timeline, unreadable files, and the run settings folded away. It tells
how to fix people in the browser (``facecluster review``).
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

GRID = 5  # columns of a montage (export's montage_grid)
TILE = 54  # px a montage tile is shown at, the same on every card
STYLE = f"""
:root{{--bg:#f4f5f7;--card:#fff;--text:#15171a;--muted:#667085;--border:#e3e6eb;--accent:#2563eb;
--soft:#e7efff}}
@media (prefers-color-scheme:dark){{:root{{--bg:#111315;--card:#1b1e22;--text:#eceef1;--muted:#9aa3ae;
--border:#2d3238;--accent:#5b8cff;--soft:#1d2a45}}}}
*{{box-sizing:border-box}}
body{{margin:0;background:var(--bg);color:var(--text);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}}
main{{max-width:1280px;margin:0 auto;padding:28px 20px 60px}}
h1{{margin:0;font-size:30px;letter-spacing:-.01em}} h2{{font-size:19px;margin:34px 0 10px}}
a{{color:var(--accent);text-decoration:none}} a:hover{{text-decoration:underline}}
.muted{{color:var(--muted)}} code{{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}}
.review{{display:flex;gap:14px;align-items:flex-start;margin:20px 0 24px;padding:14px 18px;border-radius:14px;
background:var(--soft);border:1px solid color-mix(in srgb,var(--accent) 22%,var(--border))}}
.review b{{display:block}} .review code{{display:inline-block;margin-top:6px;padding:4px 8px;border-radius:7px;
background:var(--card);border:1px solid var(--border);word-break:break-all}}
.people{{display:grid;grid-template-columns:repeat(auto-fill,minmax({GRID * TILE + 26}px,1fr));gap:16px}}
.card{{display:flex;flex-direction:column;gap:10px;background:var(--card);border-radius:14px;padding:13px;
box-shadow:0 1px 2px rgba(16,24,40,.05),0 1px 3px rgba(16,24,40,.08);min-width:0}}
.card h3{{margin:0;font-size:16px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}}
.card h3 a{{color:inherit}} .meta{{font-size:13px;color:var(--muted)}}
.id{{display:inline-block;font-size:12px;font-weight:600;color:var(--accent);background:var(--soft);
border-radius:99px;padding:0 7px;margin-right:4px}}
.montage{{display:block;max-width:100%;height:auto;border-radius:8px;background:var(--border)}}
.card.unknown{{background:transparent;border:1px dashed var(--border);box-shadow:none}}
table{{border-collapse:collapse;margin:6px 0;font-size:14px;background:var(--card);border-radius:10px;
overflow:hidden;display:block;max-width:100%;overflow-x:auto}}
td,th{{border-bottom:1px solid var(--border);padding:6px 12px;text-align:left;vertical-align:top}}
details{{margin-top:34px}} summary{{cursor:pointer;font-weight:600;font-size:17px}}
@media (max-width:600px){{main{{padding:18px 12px 40px}} h1{{font-size:24px}}
.people{{grid-template-columns:1fr}}}}
"""


def write_report(output: Path, summary: dict) -> Path:
    """Write ``index.html`` for an export summary (see :func:`facecluster.export.export`)."""
    counts = summary["counts"]
    people = summary["people"]
    cards = [_card(p) for p in people]
    unknown = summary.get("unknown_faces") or 0
    if unknown:
        cards.append(_unknown_card(summary.get("unknown_folder") or "unknown", unknown))
    errors = "".join(f"<tr><td>{_e(path)}</td><td>{_e(why or '')}</td></tr>"
                     for path, why in summary["unreadable"])
    runs = "".join(
        f"<tr><td>{_e(r['command'])}</td><td>{r['seconds']} s</td>"
        f"<td><code>{_e(_brief(r['params']))}</code></td></tr>" for r in summary["runs"])
    folder = _export_folder(Path(output))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>facecluster: {_plural(len(people), 'person')}</title>
<style>{STYLE}</style></head><body><main>
<h1>{_plural(len(people), 'person')}</h1>
<p class="muted">{_plural(counts['faces'], 'face')} in {_plural(counts['photos'], 'photo')};
{_plural(unknown, 'face')} unknown; {_plural(counts['unreadable'], 'unreadable file')}.
Made {datetime.now():%Y-%m-%d %H:%M}.</p>
<div class="review"><div><b>Name people, merge, split and fix them in your browser:</b>
<code>facecluster review {_e(_quoted(folder))}</code>
<div class="muted">Every correction holds on later runs; “Update folders” there rewrites these folders.
A person is given to the command line by the number on its card.</div></div></div>
<div class="people">{''.join(cards)}</div>
{_timeline(summary)}
<h2>Unreadable files ({counts['unreadable']})</h2>
{f'<table><tr><th>file</th><th>why</th></tr>{errors}</table>' if errors else '<p class="muted">None.</p>'}
{_without_face(summary.get("without_face") or [])}
<details><summary>Run settings</summary>
<table><tr><th>step</th><th>time</th><th>settings</th></tr>{runs}</table>
</details>
</main></body></html>
"""
    path = Path(output) / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


WITHOUT_FACE_SHOWN = 500  # files listed in the report (people.json has them all)


def _without_face(paths: list[str]) -> str:
    """The files read in which no face was found, folded away."""
    if not paths:
        return ""
    rows = "".join(f"<tr><td>{_e(p)}</td></tr>" for p in paths[:WITHOUT_FACE_SHOWN])
    more = (f'<p class="muted">… and {len(paths) - WITHOUT_FACE_SHOWN:,} more (all in people.json)</p>'
            if len(paths) > WITHOUT_FACE_SHOWN else "")
    return (f"<details><summary>No face found ({len(paths):,})</summary>"
            f"<table><tr><th>file</th></tr>{rows}</table>{more}</details>")


def _card(person: dict) -> str:
    folder, faces = person["folder"], person["faces"]
    title = person.get("name") or folder
    seconds = person.get("screen_seconds")
    details = [_plural(faces, "face"), _plural(person["photos"], "photo")]
    if seconds is not None:
        details.append(f"{seconds:.1f} s on screen")
    return (f'<div class="card"><div><h3><a href="{_e(folder)}/">{_e(title)}</a></h3>'
            f'<div class="meta"><span class="id" title="id for the command line">{person["id"]}</span>'
            f'{_e(folder)}/ · {" · ".join(details)}</div></div>'
            f'{_montage(folder, faces, title)}</div>')


def _unknown_card(folder: str, faces: int) -> str:
    return (f'<div class="card unknown"><div><h3><a href="{_e(folder)}/">Unknown</a></h3>'
            f'<div class="meta">{_e(folder)}/ · {_plural(faces, "face")} that '
            f'{"belongs" if faces == 1 else "belong"} to nobody else</div></div>{_montage(folder, faces, "Unknown")}</div>')


def _montage(folder: str, faces: int, title: str) -> str:
    """The montage at a fixed tile size, so that every card's tiles are the same size."""
    columns = min(GRID, max(1, faces))
    rows = min(GRID, -(-faces // columns))
    return (f'<a href="{_e(folder)}/"><img class="montage" src="{_e(folder)}/montage.jpg" loading="lazy"'
            f' width="{columns * TILE}" height="{rows * TILE}" alt="faces of {_e(title)}"></a>')


def _timeline(summary: dict) -> str:
    """The video timeline section (empty without videos)."""
    if not summary.get("timeline_png"):
        return ""
    return ('<h2>Timeline</h2><p class="muted">Who is on screen when; per track in '
            '<a href="timeline.csv">timeline.csv</a>.</p>'
            f'<img src="{_e(summary["timeline_png"])}" alt="timeline" style="max-width:100%">')


def _export_folder(output: Path) -> Path:
    """The export folder the report ends up in (export writes it in a hidden staging folder)."""
    try:
        from facecluster.export import STAGING_PREFIX
    except ImportError:  # pragma: no cover
        STAGING_PREFIX = ".facecluster-export-"
    output = output.absolute()
    return output.parent if output.name.startswith(STAGING_PREFIX) else output


def _quoted(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c in text for c in " '\"$`\\&;|()<>*?!#~") else text


def _plural(n: int, word: str) -> str:
    many = {"person": "people"}.get(word, word + "s")
    return f"{n:,} {word if n == 1 else many}"


def _e(text) -> str:
    return html.escape(str(text))


def _brief(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
