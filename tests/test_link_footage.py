"""Linking's embedding of new footage (acan_tf.deploy.linker.embed_footage): every image decoded once, for its
embedding and its thumbnail, in bounded batches; undecodable images refused or skipped. A stand-in embedder, no
export: the fast tier."""

import base64
import collections
import io
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from acan_tf.data import pipeline
from acan_tf.data.records import frame_paths
from acan_tf.deploy import link_page, linker
from acan_tf.deploy.linker import LinkError, embed_footage, read_footage
from acan_tf.errors import UserError

HEIGHT, WIDTH = 32, 16


def write_footage(root, tracklets=False):
    """Two cameras' local ids of images of several sizes (or, with `tracklets`, of tracklet folders)."""
    rng = np.random.default_rng(0)
    layout = {"cam1": {"a": 6, "b": 1}, "cam2": {"a": 2, "c": 3}}
    for camera, local_ids in layout.items():
        for local_id, count in local_ids.items():
            for index in range(count):
                folder = os.path.join(root, camera, local_id, *([f"t{index // 2}"] if tracklets else []))
                os.makedirs(folder, exist_ok=True)
                size = (int(rng.integers(20, 90)), int(rng.integers(10, 50)))
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"{index}.png"))
    return str(root)


class CountingDecoder:
    """linker.read_image, counting the files it is asked to decode."""

    def __init__(self):
        self.calls = collections.Counter()

    def __call__(self, path):
        self.calls[path] += 1
        return pipeline.read_image(path)


class StandInEmbedder:
    """items → the mean colour of each item's frames, one row per item; remembers every batch's frame count."""

    def __init__(self):
        self.batches, self.frames = [], {}

    def __call__(self, items):
        self.batches.append(sum(len(item) for item in items))
        return np.stack([item.reshape(-1, 3).mean(axis=0) + 1.0 for item in items])


def training_pixels(path):
    """Training's decode and resize (acan_tf.data.pipeline.decode_image), rounded to uint8 as an export's input."""
    return np.clip(np.rint(pipeline.decode_image(tf.constant(path), HEIGHT, WIDTH).numpy()), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("tracklets", [False, True])
def test_each_image_is_decoded_once_for_its_embedding_and_thumbnail(tmp_path, monkeypatch, tracklets):
    scan = read_footage(write_footage(tmp_path / "footage", tracklets))
    decoder, embedder = CountingDecoder(), StandInEmbedder()
    monkeypatch.setattr(linker, "read_image", decoder)
    monkeypatch.setattr(linker, "FRAMES_PER_BATCH", 3)  # several batches
    footage = embed_footage(scan, embedder, HEIGHT, WIDTH, show_progress=False)

    frames = [path for record in scan.records for path in frame_paths(record)]
    assert sorted(decoder.calls) == sorted(frames) and set(decoder.calls.values()) == {1}
    assert footage.records == scan.records and footage.skipped == ()
    # Streaming: a batch closes once it holds FRAMES_PER_BATCH frames, so no batch exceeds it by a whole item.
    longest = max(len(frame_paths(record)) for record in scan.records)
    assert len(embedder.batches) > 1 and max(embedder.batches) <= 3 + longest - 1
    assert sum(embedder.batches) == len(frames)
    expected = np.stack([np.mean([training_pixels(path).reshape(-1, 3).mean(0) for path in frame_paths(record)],
                                 axis=0) + 1.0 for record in scan.records])
    np.testing.assert_allclose(footage.embeddings, expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               rtol=1e-5)
    # Thumbnails: the first frame of each of a local id's first four items, from the same decoding.
    for pid in range(len(scan.identities)):
        firsts = [frame_paths(record)[0] for record in scan.records if record.pid == pid][:4]
        shown = footage.thumbnails[pid]
        assert [path for path, _ in shown] == firsts
        for path, url in shown:
            image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            original = Image.open(path)
            assert image.format == "JPEG" and image.width <= 64 and image.height <= 128
            assert abs(image.width / image.height - original.width / original.height) < 0.1


@pytest.mark.parametrize("tracklets", [False, True])
def test_an_undecodable_image_is_skipped_and_named_or_refuses_the_footage(tmp_path, monkeypatch, tracklets):
    scan = read_footage(write_footage(tmp_path / "footage", tracklets))
    victim = scan.records[1]
    bad = frame_paths(victim)[0]
    with open(bad, "wb") as handle:
        handle.write(b"not an image")
    decoder, embedder = CountingDecoder(), StandInEmbedder()
    monkeypatch.setattr(linker, "read_image", decoder)
    footage = embed_footage(scan, embedder, HEIGHT, WIDTH, bad_images="skip", show_progress=False)
    assert [path for path, _ in footage.skipped] == [bad] and set(decoder.calls.values()) == {1}
    left = frame_paths(victim)[1:]
    if left:  # a tracklet keeps its other frames
        assert footage.records[1].pid == victim.pid and frame_paths(footage.records[1]) == tuple(left)
    else:  # an image record is dropped
        assert victim not in footage.records and len(footage.records) == len(scan.records) - 1
    assert len(footage.embeddings) == len(footage.records)

    decoder, embedder = CountingDecoder(), StandInEmbedder()
    monkeypatch.setattr(linker, "read_image", decoder)
    monkeypatch.setattr(linker, "FRAMES_PER_BATCH", 1)
    with pytest.raises(LinkError, match=r"1 image\(s\) cannot be decoded \(" + re.escape(bad)):
        embed_footage(scan, embedder, HEIGHT, WIDTH, show_progress=False)
    assert set(decoder.calls.values()) == {1} and len(decoder.calls) == sum(len(frame_paths(r))
                                                                            for r in scan.records)
    # Only the batch before the bad image (the first item): nothing is embedded once the footage is refused.
    assert embedder.batches == [len(frame_paths(scan.records[0]))]


def test_the_page_shows_the_thumbnails_made_while_embedding(tmp_path):
    scan = read_footage(write_footage(tmp_path / "footage"))
    footage = embed_footage(scan, StandInEmbedder(), HEIGHT, WIDTH, show_progress=False)
    document = linker.link_footage(footage, {"similarity_threshold": -1.0, "centre_per_camera": True, "source": "t",
                                             "distance": 2.0})
    urls = linker.thumbnail_urls(footage)
    page = link_page.identities_page(document, urls)
    members = [member for identity in document["identities"] for member in identity["members"]] + document["alone"]
    shown = [path for member in members for path in member["thumbnails"]]
    assert len(shown) == len(urls) and all(urls[path] in page for path in shown)
    assert page.count("data:image/jpeg;base64,") == len(shown)


def test_an_export_of_the_old_naming_is_refused_saying_to_export_again(tmp_path):
    card = {"input": {"height": HEIGHT, "width": WIDTH}, "fingerprint": "0123456789abcdef", "model_hash": "ab" * 32}
    (tmp_path / "model.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=f"{re.escape(str(tmp_path / 'model.json'))}: names its model by "
                                        "'fingerprint'.*export the run again"):
        linker.read_export(str(tmp_path), "onnx")
