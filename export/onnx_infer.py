"""Edge runner: embeds images or tracklets with the ONNX export, ranks a gallery. Needs numpy, Pillow, onnxruntime.

    python onnx_infer.py --model OUT/NAME/VERSION image.jpg            # one JSON line per image: its embedding
    python onnx_infer.py --model OUT/NAME/VERSION folder/               # every image of the folder
    python onnx_infer.py --model OUT/NAME/VERSION --gallery gallery/ query.jpg --top_k 5   # nearest gallery images
    python onnx_infer.py --model OUT/NAME/VERSION --tracklets track1/ --gallery tracks/    # folders are tracklets
    python onnx_infer.py --model OUT/NAME/VERSION --camera c1 --gallery gallery/ --gallery_camera c2 query.jpg

Images are resized to the model's input size as in training (preprocess.py). A tracklet's embedding is the
L2-normalised mean of its frames' features, as the SavedModel's embed_tracklets computes it. With --camera (and
--gallery_camera) the embeddings are normalised with each camera's statistics (camera_norm.py; the export's
camera_stats.json by default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime

from camera_norm import STATISTICS_FILE, add_arguments, camera_embedders, check_arguments
from matching import answer_records, tracklet_embedding
from preprocess import collect_items, gallery_items, load_image

ONNX_FILE = "model.onnx"


class OnnxEmbedder:
    """The exported ONNX model: uint8 `images` [N, H, W, 3] → unnormalised `features` [N, D]."""

    def __init__(self, path: str, threads: int = 0):
        if os.path.isdir(path):
            path = os.path.join(path, ONNX_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"--model={path}: no such file; expected model.onnx or the export folder holding it")
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
    parser.add_argument("inputs", nargs="+", help="Image files or folders (queries when --gallery is given).")
    parser.add_argument("--model", required=True, help="model.onnx, or the export folder OUT/NAME/VERSION holding it.")
    parser.add_argument("--gallery",
                        help="Gallery folder: print each input's nearest gallery items instead of embeddings.")
    parser.add_argument("--top_k", type=int, default=5, help="Matches printed per query.")
    parser.add_argument("--tracklets", action="store_true",
                        help="Every input folder, and every gallery sub-folder, is one tracklet.")
    parser.add_argument("--batch_size", type=int, default=32, help="Images per ONNX Runtime call.")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: one per core).")
    add_arguments(parser, f"{STATISTICS_FILE} beside the model")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1 or args.threads < 0:
        parser.error("--top_k and --batch_size must be positive integers, --threads >= 0")
    check_arguments(parser, args)
    return args


def main(argv: list[str]) -> int:
    """Prints one JSON line per input: its embedding, or its nearest gallery items."""
    args = parse_args(argv)
    try:
        embedder = OnnxEmbedder(args.model, args.threads)
        queries = collect_items(args.inputs, args.tracklets)
        gallery = gallery_items(args.gallery, args.tracklets) if args.gallery else None
        embed_queries, embed_gallery = camera_embedders(
            args.camera, args.gallery_camera, args.camera_stats or os.path.join(embedder.folder, STATISTICS_FILE),
            lambda items: embedder.embed(items, args.batch_size), embedder.folder, embedder.embeddings,
            embedder.height, embedder.width, args.model)
        records = answer_records(queries, gallery, embed_queries, args.top_k, embed_gallery)
    except ValueError as error:
        print(f"onnx_infer: error: {error}", file=sys.stderr)
        return 2
    for record in records:
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
