"""REST client of TF Serving's predict API: prints embeddings of images (or tracklets), or their nearest gallery items.

    python client.py --server http://localhost:8501 --model_name acan image.jpg folder/
    python client.py --server http://localhost:8501 --model_name acan --gallery gallery/ query.jpg --top_k 5
    python client.py --server http://localhost:8501 --model_name acan --tracklets track1/ track2/
    python client.py --model_name acan --camera_stats stats.json --camera c1 --gallery g/ --gallery_camera c2 q.jpg

Needs numpy and Pillow (standard-library HTTP). Images are resized client-side to the model's input size as in
training (preprocess.py); the size is read from the server's model metadata unless --height/--width are given.
With --camera (and --gallery_camera) the embeddings are normalised with each camera's statistics (camera_norm.py;
--camera_stats: the export's camera_stats.json, checked against the served model on fixed probe images).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

import numpy as np

from camera_norm import STATISTICS_FILE, add_arguments, camera_embedders, check_arguments
from matching import answer_records
from preprocess import collect_items, gallery_items, load_image

IMAGE_SIGNATURE, TRACKLET_SIGNATURE = "serving_default", "embed_tracklets"


def model_url(server: str, model_name: str, version: int | None = None) -> str:
    """http://host:port/v1/models/NAME[/versions/N], the prefix of TF Serving's REST endpoints."""
    url = f"{server.rstrip('/')}/v1/models/{model_name}"
    return f"{url}/versions/{version}" if version is not None else url


def predict_body(pixels: np.ndarray, signature: str = IMAGE_SIGNATURE) -> dict:
    """A predict request in row format: one instance per image [H, W, 3] (or tracklet [T, H, W, 3]) of uint8 numbers."""
    return {"signature_name": signature, "instances": pixels.astype(np.uint8).tolist()}


def parse_predictions(response: dict) -> np.ndarray:
    """The embeddings [N, D] of a row-format predict response (a single named output: "predictions" is its list)."""
    if "error" in response:
        raise RuntimeError(f"TF Serving: {response['error']}")
    return np.asarray(response["predictions"], dtype=np.float32)


def input_size(metadata: dict) -> tuple[int, int]:
    """(H, W) of serving_default's `images` input in a model metadata response."""
    try:
        inputs = metadata["metadata"]["signature_def"]["signature_def"][IMAGE_SIGNATURE]["inputs"]
        dims = inputs["images"]["tensor_shape"]["dim"]
        return int(dims[1]["size"]), int(dims[2]["size"])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise RuntimeError(
            f"the model metadata has no {IMAGE_SIGNATURE} 'images' input of shape [N, H, W, 3]"
        ) from error


def request_json(url: str, body: dict | None = None, timeout: float = 60.0) -> dict:
    """GET (or, with a body, POST) `url` and decode the JSON answer; TF Serving's {"error": ...} becomes an error."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise RuntimeError(f"{url}: HTTP {error.code}: {detail}") from error
    except urllib.error.URLError as error:
        raise RuntimeError(f"{url}: cannot reach TF Serving ({error.reason})") from error


class ServingEmbedder:
    """A model served by TF Serving: items → L2-normalised embeddings through the predict API."""

    def __init__(self, url: str, height: int | None = None, width: int | None = None, timeout: float = 60.0):
        self.url, self.timeout = url, timeout
        self.height, self.width = ((height, width) if height and width
                                   else input_size(request_json(f"{url}/metadata", timeout=timeout)))

    def predict(self, pixels: np.ndarray, signature: str) -> np.ndarray:
        """Embeddings of a batch of images or tracklets."""
        return parse_predictions(request_json(f"{self.url}:predict", predict_body(pixels, signature), self.timeout))

    def embed(self, items: list[tuple[str, list[str]]], tracklets: bool = False, batch_size: int = 16) -> np.ndarray:
        """One embedding per item: images in batches through serving_default, each tracklet through embed_tracklets."""
        def pixels(paths: list[str]) -> np.ndarray:
            return np.stack([load_image(path, self.height, self.width) for path in paths])

        if tracklets:
            return np.concatenate([self.predict(pixels(paths)[None], TRACKLET_SIGNATURE) for _, paths in items])
        paths = [paths[0] for _, paths in items]
        return np.concatenate([self.predict(pixels(paths[i:i + batch_size]), IMAGE_SIGNATURE)
                               for i in range(0, len(paths), batch_size)])


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="Image files or folders (queries when --gallery is given).")
    parser.add_argument("--server", default="http://localhost:8501",
                        help="TF Serving's REST address (--rest_api_port).")
    parser.add_argument("--model_name", required=True, help="The served model's name.")
    parser.add_argument("--version", type=int, help="Model version; default: the latest the server has loaded.")
    parser.add_argument("--gallery",
                        help="Gallery folder: print each input's nearest gallery items instead of embeddings.")
    parser.add_argument("--top_k", type=int, default=5, help="Matches printed per query.")
    parser.add_argument("--tracklets", action="store_true",
                        help="Every input folder, and every gallery sub-folder, is one tracklet.")
    parser.add_argument("--batch_size", type=int, default=16, help="Images per request.")
    parser.add_argument("--height", type=int, help="Input height; default: from the model metadata.")
    parser.add_argument("--width", type=int, help="Input width; default: from the model metadata.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait for each answer.")
    add_arguments(parser, f"{STATISTICS_FILE} in the current folder (copy it from the export)")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top_k and --batch_size must be positive integers")
    check_arguments(parser, args)
    return args


def main(argv: list[str]) -> int:
    """Prints one JSON line per input: its embedding, or its nearest gallery items."""
    args = parse_args(argv)
    try:
        embedder = ServingEmbedder(model_url(args.server, args.model_name, args.version), args.height, args.width,
                                   args.timeout)
        queries = collect_items(args.inputs, args.tracklets)
        gallery = gallery_items(args.gallery, args.tracklets) if args.gallery else None
        embed_queries, embed_gallery = camera_embedders(
            args.camera, args.gallery_camera, args.camera_stats or STATISTICS_FILE,
            lambda items: embedder.embed(items, args.tracklets, args.batch_size), None,
            lambda pixels: embedder.predict(pixels, IMAGE_SIGNATURE), embedder.height, embedder.width,
            f"the served model {embedder.url}")
        records = answer_records(queries, gallery, embed_queries, args.top_k, embed_gallery)
    except (ValueError, RuntimeError) as error:
        print(f"client: error: {error}", file=sys.stderr)
        return 2
    for record in records:
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
