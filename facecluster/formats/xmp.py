"""XMP sidecars with the people in each photo, for digiKam, darktable, Lightroom and ExifTool.

Each photo with a named person gets a sidecar holding MWG-RS face regions (``mwg-rs:Regions``,
the Metadata Working Group's region schema that these tools read and write) and the IPTC
``PersonInImage`` list. Regions are normalised centre/size boxes of the photo as displayed
(EXIF orientation applied), with ``AppliedToDimensions`` its displayed size. Only named people
are written: an unnamed ``person_0012`` means nothing to another tool.

Where sidecars go:

* into a mirror folder (``into=DIR``): ``DIR/<the photo's path below the photos' common
  folder>.xmp``; nothing is written beside the photos;
* beside each photo (``into=None``): ``photo.jpg.xmp`` (darktable's and digiKam's naming). A
  sidecar already there that facecluster did not write (another tool's edits) is left alone
  and reported, never overwritten.

Photos themselves are never modified.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import escape

from facecluster.store import Store

MARK = 'xmlns:facecluster="https://github.com/facecluster/ns/1.0/" facecluster:written="1"'

TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    {mark}>
   <mwg-rs:Regions rdf:parseType="Resource">
    <mwg-rs:AppliedToDimensions stDim:w="{width}" stDim:h="{height}" stDim:unit="pixel"/>
    <mwg-rs:RegionList>
     <rdf:Bag>
{regions}
     </rdf:Bag>
    </mwg-rs:RegionList>
   </mwg-rs:Regions>
   <Iptc4xmpExt:PersonInImage>
    <rdf:Bag>
{names}
    </rdf:Bag>
   </Iptc4xmpExt:PersonInImage>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""

REGION = """      <rdf:li rdf:parseType="Resource">
       <mwg-rs:Name>{name}</mwg-rs:Name>
       <mwg-rs:Type>Face</mwg-rs:Type>
       <mwg-rs:Area stArea:x="{x:.6f}" stArea:y="{y:.6f}" stArea:w="{w:.6f}" stArea:h="{h:.6f}" stArea:unit="normalized"/>
      </rdf:li>"""


def write_xmp(db: str | os.PathLike, into: str | os.PathLike | None = None) -> dict:
    """Write a sidecar for every photo with a named person; returns what was written and skipped."""
    photos = _named_faces(db)
    root = Path(os.path.commonpath([os.path.dirname(p) for p in photos])) if photos else None
    written, skipped = [], []
    for path, (size, faces) in sorted(photos.items()):
        target = _target(Path(path), root, into)
        if target.exists() and MARK not in target.read_text(errors="replace"):
            skipped.append((str(target), "a sidecar made by another tool is already there"))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(_sidecar(size, faces), encoding="utf-8")
        os.replace(partial, target)
        written.append(str(target))
    return {"written": written, "skipped": skipped}


def _named_faces(db) -> dict[str, tuple[tuple[int, int], list]]:
    with Store(db) as store:
        rows = store.db.execute(
            "SELECT m.path, m.width, m.height, f.left, f.top, f.right, f.bottom, p.name FROM faces f"
            " JOIN media m ON m.id=f.media_id JOIN assignments a ON a.face_id=f.id"
            " JOIN people p ON p.id=a.person_id WHERE m.status='ok' AND m.kind='photo'"
            " AND p.name IS NOT NULL AND f.time IS NULL ORDER BY m.path, f.left").fetchall()
    faces, sizes = defaultdict(list), {}
    for path, width, height, *box, name in rows:
        faces[path].append((box, name))
        sizes[path] = (width, height)
    return {path: (sizes[path], found) for path, found in faces.items()}


def _target(photo: Path, root: Path | None, into) -> Path:
    if into is None:
        return photo.with_name(photo.name + ".xmp")
    return Path(into).expanduser() / (str(photo.relative_to(root)) + ".xmp")


def _sidecar(size: tuple[int, int], faces: list) -> str:
    width, height = size
    regions = [REGION.format(name=escape(name), x=(l + r) / 2 / width, y=(t + b) / 2 / height,
                             w=(r - l) / width, h=(b - t) / height) for (l, t, r, b), name in faces]
    names = [f"     <rdf:li>{escape(n)}</rdf:li>" for n in sorted({n for _, n in faces})]
    return TEMPLATE.format(mark=MARK, width=width, height=height, regions="\n".join(regions),
                           names="\n".join(names))

