"""identities.html: each cross-camera identity as a row of thumbnails per camera, one self-contained file that a
browser shows offline (thumbnails are embedded as small JPEGs)."""

from __future__ import annotations

import base64
import html
import io

from PIL import Image

THUMBNAIL_SIZE = (64, 128)  # width, height at most
MAX_ALONE_SHOWN = 200  # local ids seen by one camera only shown on the page (identities.json lists them all)
STYLE = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td{border:1px solid #ccc;
padding:4px;vertical-align:top}img{margin:1px;height:96px}.who{font-size:12px;color:#444}"""


def thumbnail(path: str) -> str:
    """An image as a data: URL of a small JPEG, or an empty string for a file that cannot be read."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail(THUMBNAIL_SIZE)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def member_cell(member: dict) -> str:
    """One (camera, local id): its name, item count and thumbnails."""
    images = "".join(f'<img src="{url}" alt="">' for url in map(thumbnail, member["thumbnails"]) if url)
    return (f'<td><div class="who">{html.escape(member["camera"])} / {html.escape(member["local_id"])} '
            f'({member["items"]} items)</div>{images}</td>')


def identities_page(document: dict) -> str:
    """The HTML page of an identities.json document."""
    threshold = document["threshold"]
    rows = []
    for identity in document["identities"]:
        distances = ", ".join(f"{link['distance']:.3f}" for link in identity["links"])
        rows.append(f"<tr><th>{identity['identity']}</th>{''.join(map(member_cell, identity['members']))}"
                    f'<td class="who">link distances: {distances}</td></tr>')
    alone = "".join(f"<tr>{member_cell(member)}</tr>" for member in document["alone"][:MAX_ALONE_SHOWN])
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Cross-camera identities</title>"
            f"<style>{STYLE}</style></head><body><h1>Cross-camera identities</h1>"
            f"<p>{document['cross_camera_identities']} identities seen by several cameras, linking "
            f"{document['local_ids_linked']} of {document['local_ids']} camera-local ids from cameras "
            f"{html.escape(', '.join(document['cameras']))}; threshold: cosine similarity "
            f"{threshold['similarity_threshold']:.4f} of per-camera centred proxies "
            f"({html.escape(threshold['source'])}).</p><table>{''.join(rows)}</table>"
            f"<h2>Seen by one camera only ({len(document['alone'])}"
            f"{f', the first {MAX_ALONE_SHOWN} shown' if len(document['alone']) > MAX_ALONE_SHOWN else ''})</h2>"
            f"<table>{alone}</table></body></html>\n")
