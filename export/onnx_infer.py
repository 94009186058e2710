"""Edge runner: embeds images or tracklets with the ONNX export, ranks a gallery. Needs numpy, Pillow, onnxruntime.

    python onnx_infer.py --model OUT/NAME/VERSION image.jpg            # one JSON line per image: its embedding
    python onnx_infer.py --model OUT/NAME/VERSION folder/               # every image of the folder
    python onnx_infer.py --model OUT/NAME/VERSION --gallery gallery/ query.jpg --top_k 5   # nearest gallery images
    python onnx_infer.py --model OUT/NAME/VERSION --tracklets track1/ --gallery tracks/    # folders are tracklets
    python onnx_infer.py --model OUT/NAME/VERSION --camera c1 --gallery gallery/ --gallery_camera c2 query.jpg
    python onnx_infer.py --model OUT/NAME/VERSION --index gallery.idx --gallery gallery/   # add the gallery to an index
    python onnx_infer.py --model OUT/NAME/VERSION --index gallery.idx query.jpg            # search the saved index

Images are resized to the model's input size as in training (preprocess.py). A tracklet's embedding is the
L2-normalised mean of its frames' features, as the SavedModel's embed_tracklets computes it. With --camera (and
--gallery_camera) the embeddings are normalised with each camera's statistics (camera_norm.py; the export's
camera_stats.json by default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import numpy as np
import onnxruntime

from camera_norm import STATISTICS_FILE, add_arguments, camera_embedders, check_arguments
from gallery_index import GalleryIndex
from matching import answer_records, card_threshold, tracklet_embedding
from model_card import MODEL_CARD, model_hash, read_card
from preprocess import collect_items, gallery_items, load_image

ONNX_FILE, ONNX_INT8_FILE = "model.onnx", "model_int8.onnx"


class OnnxEmbedder:
    """The exported ONNX model: uint8 `images` [N, H, W, 3] → unnormalised `features` [N, D]."""

    def __init__(self, path: str, threads: int = 0):
        if os.path.isdir(path):
            path = os.path.join(path, ONNX_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"--model={path}: no such file; expected model.onnx or the export folder holding it")
        # The model card beside the model (None for a model file copied alone); its calibration is per format.
        self.format = "onnx_int8" if os.path.basename(path) == ONNX_INT8_FILE else "onnx"
        self.card_path = os.path.join(os.path.dirname(path), MODEL_CARD)
        self.card = read_card(self.card_path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core; 1 was faster at batch 1 on a CPU busy with other work
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.folder = os.path.dirname(os.path.abspath(path))
        self.input = self.session.get_inputs()[0]
        _, self.height, self.width, _ = self.input.shape

    def features(self, images: np.ndarray) -> np.ndarray:
        """F(x) of a batch of uint8 images."""
        return self.session.run(["features"], {self.input.name: images})[0]

    def embeddings(self, images: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings of a batch of uint8 images."""
        return self.session.run(["embeddings"], {self.input.name: images})[0]

    def embed(self, items: list[tuple[str, list[str]]], batch_size: int = 32) -> np.ndarray:
        """L2-normalised embeddings [len(items), D] of items (an image, or a tracklet's frames averaged)."""
        frames = [path for _, paths in items for path in paths]
        features = np.concatenate([
            self.features(np.stack([load_image(p, self.height, self.width) for p in frames[start:start + batch_size]]))
            for start in range(0, len(frames), batch_size)
        ])
        ends = np.cumsum([len(paths) for _, paths in items])
        return np.stack([tracklet_embedding(part) for part in np.split(features, ends[:-1])])


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="Image files or folders (queries when --gallery is given).")
    parser.add_argument("--model", required=True, help="model.onnx, or the export folder OUT/NAME/VERSION holding it.")
    parser.add_argument("--gallery",
                        help="Gallery folder: print each input's nearest gallery items instead of embeddings.")
    parser.add_argument("--index",
                        help="Gallery index file (gallery_index.py): --gallery's items are added to it (it is created "
                             "if absent), and the inputs are searched in it.")
    parser.add_argument("--top_k", type=int, default=5, help="Matches printed per query.")
    parser.add_argument("--threshold", default="auto",
                        help="Same-person distance: matches farther are not printed (no_match when none is left). "
                             "auto: model.json's calibrated threshold if it has one; card: it, or an error; none; "
                             "or a distance in [0, 2].")
    parser.add_argument("--tracklets", action="store_true",
                        help="Every input folder, and every gallery sub-folder, is one tracklet.")
    parser.add_argument("--batch_size", type=int, default=32, help="Images per ONNX Runtime call.")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: one per core).")
    add_arguments(parser, f"{STATISTICS_FILE} beside the model")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1 or args.threads < 0:
        parser.error("--top_k and --batch_size must be positive integers, --threads >= 0")
    check_arguments(parser, args)
    if not args.inputs and not (args.index and args.gallery):
        parser.error("no inputs: pass image files or folders (or --index with --gallery to only fill the index)")
    return args


def item_metadata(name: str, paths: list[str]) -> dict:
    """What the index keeps of an item: its source, its camera (the folder holding it) and its file's time."""
    modified = datetime.datetime.fromtimestamp(os.path.getmtime(paths[0]), datetime.timezone.utc)
    return {"source": name, "camera": os.path.basename(os.path.dirname(os.path.abspath(name))),
            "time": modified.isoformat(timespec="seconds")}


def index_records(path: str, card: dict | None, card_path: str, embed_queries, embed_gallery, queries, gallery,
                  top_k: int, threshold: float | None) -> list[dict]:
    """With --index: `gallery` added to the index at `path` (created if absent, saved); `queries` searched in it."""
    identity = None if card is None else model_hash(card, card_path)
    if identity is None:
        raise ValueError(f"--index={path}: needs the export's model.json beside the model, with its model_hash "
                         "(export the run again if it predates the gallery index)")
    size = card["embedding_size"]
    index = GalleryIndex.load(path, size, identity) if os.path.exists(path) else GalleryIndex(size, identity)
    if gallery:
        index.add(embed_gallery(gallery), [item_metadata(name, paths) for name, paths in gallery])
        index.save(path)
    if not queries:
        return []
    records = []
    for (name, _), matches in zip(queries, index.search(embed_queries(queries), top_k, threshold)):
        record = {"query": name, "matches": [
            {"item": m.metadata.get("source"), "distance": m.distance, "id": m.id,
             **{key: value for key, value in m.metadata.items() if key != "source"}} for m in matches]}
        if threshold is not None:
            record.update(threshold=threshold, no_match=not matches)
        records.append(record)
    return records


def main(argv: list[str]) -> int:
    """Prints one JSON line per input: its embedding, or its nearest gallery items."""
    args = parse_args(argv)
    try:
        embedder = OnnxEmbedder(args.model, args.threads)
        threshold = card_threshold(embedder.card, embedder.format, args.threshold)
        queries = collect_items(args.inputs, args.tracklets)
        gallery = gallery_items(args.gallery, args.tracklets) if args.gallery else None
        embed_queries, embed_gallery = camera_embedders(
            args.camera, args.gallery_camera, args.camera_stats or os.path.join(embedder.folder, STATISTICS_FILE),
            lambda items: embedder.embed(items, args.batch_size), embedder.folder, embedder.embeddings,
            embedder.height, embedder.width, args.model)
        records = (index_records(args.index, embedder.card, embedder.card_path, embed_queries, embed_gallery,
                                 queries, gallery, args.top_k, threshold)
                   if args.index else answer_records(queries, gallery, embed_queries, args.top_k, threshold,
                                                     embed_gallery))
    except ValueError as error:
        print(f"onnx_infer: error: {error}", file=sys.stderr)
        return 2
    for record in records:
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
