"""`python -m acan_tf.link`: which people, seen by different cameras, are the same person? Links new footage's
camera-local identities across cameras with an export and training's association rule.

    python -m acan_tf.link --export=models/acan/1 --footage=footage/ --output_dir=linked/

--footage is one folder in the layout of your own cameras, <camera>/<local id>/<images> (video: <local id>/
<tracklet>/<frames>). Writes identities.json (every cross-camera identity with its (camera, local id) members and
link distances) and identities.html (thumbnails per camera, viewable offline). The threshold is the model card's
calibrated one for the runtime (--link_threshold overrides it). The library code is acan_tf.deploy.linker.
"""

from __future__ import annotations

import os
import sys

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app, flags

from acan_tf.deploy import linker
from acan_tf.deploy.link_page import identities_page
from acan_tf.errors import UserError
from acan_tf.io import write_json, write_text
from acan_tf.logs import warnings_only_unless_asked
from acan_tf.model.identity import MODEL_HASH

DOCUMENT, PAGE = "identities.json", "identities.html"


def define_flags() -> None:
    """The command's flags (defined only when run as a program, so the module can be imported next to others)."""
    flags.DEFINE_string("export", None,
                        "Export folder OUT/NAME/VERSION (model.json, model.onnx and/or the SavedModel).", required=True)
    flags.DEFINE_string("footage", None,
                        "Folder of <camera>/<local id>/<images> (or <local id>/<tracklet>/<frames>).", required=True)
    flags.DEFINE_string("output_dir", None, f"Folder for {DOCUMENT} and {PAGE}.", required=True)
    flags.DEFINE_enum("runtime", "onnx", list(linker.RUNTIMES), "Which exported model embeds: ONNX Runtime (onnx, "
                      "onnx_int8) or TensorFlow (saved_model).")
    flags.DEFINE_float("link_threshold", None, "Cosine similarity (of per-camera centred proxies, as training's "
                       "--association_threshold) a link needs; default: the model card's calibrated one.")
    flags.DEFINE_enum("bad_images", "refuse", list(linker.BAD_IMAGES), "An image that cannot be decoded: refuse the "
                      "footage (naming it), or skip it (named in identities.json).")


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    warnings_only_unless_asked()
    try:
        linker.check_output(options.output_dir, DOCUMENT, PAGE)
        card, embed_items = linker.read_export(options.export, options.runtime)
        threshold = linker.link_threshold(card, options.runtime, options.link_threshold)
        scan = linker.read_footage(options.footage)
        print(f"embedding {len(scan.records)} items of {len(scan.identities)} local ids from "
              f"{len(scan.camera_names)} cameras with {options.runtime}")
        footage = linker.embed_footage(scan, embed_items, *linker.input_size(card), options.bad_images)
        for path, reason in footage.skipped:
            print(f"skipped {path}: {reason}")
        document = linker.link_footage(footage, threshold)
    except UserError as error:
        sys.exit(f"acan_tf.link: error: {error}")
    document["model"] = {"export": os.path.abspath(options.export), "runtime": options.runtime,
                         MODEL_HASH: card.get(MODEL_HASH)}
    document["footage"] = os.path.abspath(options.footage)
    write_text(os.path.join(options.output_dir, PAGE), identities_page(document, linker.thumbnail_urls(footage)))
    write_json(os.path.join(options.output_dir, DOCUMENT), document)
    print(f"{document['cross_camera_identities']} cross-camera identities linking {document['local_ids_linked']} of "
          f"{document['local_ids']} local ids (threshold {threshold['similarity_threshold']:.4f}, "
          f"{threshold['source']})")
    print(f"wrote {os.path.abspath(os.path.join(options.output_dir, DOCUMENT))} and {PAGE}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
