"""identities.html: each cross-camera identity as a row of thumbnails per camera, one self-contained file that a
browser shows offline (thumbnails are embedded as small JPEGs, made from the pixels linking decoded)."""

from __future__ import annotations

import base64
import html
import io
from typing import Mapping

import numpy as np
from PIL import Image

THUMBNAIL_SIZE = (64, 128)  # width, height at most
MAX_ALONE_SHOWN = 200  # local ids seen by one camera only shown on the page (identities.json lists them all)
STYLE = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td{border:1px solid #ccc;
padding:4px;vertical-align:top}img{margin:1px;height:96px}.who{font-size:12px;color:#444}"""


def thumbnail(pixels: np.ndarray) -> str:
    """Decoded uint8 RGB pixels [h, w, 3] as a data: URL of a small JPEG."""
    image = Image.fromarray(pixels)
    image.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def member_cell(member: dict, thumbnails: Mapping[str, str]) -> str:
    """One (camera, local id): its name, item count and thumbnails (`thumbnails`: frame path → data: URL)."""
    images = "".join(f'<img src="{thumbnails[path]}" alt="">' for path in member["thumbnails"])
    return (f'<td><div class="who">{html.escape(member["camera"])} / {html.escape(member["local_id"])} '
            f'({member["items"]} items)</div>{images}</td>')


def identities_page(document: dict, thumbnails: Mapping[str, str]) -> str:
    """The HTML page of an identities.json document, with the thumbnails (frame path → data: URL) of its members."""
    threshold = document["threshold"]
    rows = []
    for identity in document["identities"]:
        distances = ", ".join(f"{link['distance']:.3f}" for link in identity["links"])
        cells = "".join(member_cell(member, thumbnails) for member in identity["members"])
        rows.append(f"<tr><th>{identity['identity']}</th>{cells}"
                    f'<td class="who">link distances: {distances}</td></tr>')
    alone = "".join(f"<tr>{member_cell(member, thumbnails)}</tr>" for member in document["alone"][:MAX_ALONE_SHOWN])
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
