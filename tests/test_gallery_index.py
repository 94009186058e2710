"""The kit's gallery index (export/gallery_index.py): NumPy reference vs faiss, thresholds, removal, files."""

import os
import sys

import numpy as np
import pytest

KIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export")
sys.path.insert(0, KIT)

import gallery_index  # noqa: E402
from gallery_index import GalleryIndex, GalleryIndexError  # noqa: E402

DIM = 16


def unit_rows(count, seed=0, dim=DIM):
    values = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def direct_top_k(queries, gallery, k):
    """Every distance, then a full sort: what the index must answer."""
    distances = np.linalg.norm(queries[:, None, :].astype(np.float64) - gallery[None, :, :], axis=2)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, 1)


def filled(backend, count=300, **options):
    index = GalleryIndex(DIM, "abc123", backend=backend, **options)
    index.add(unit_rows(count), [{"camera": f"c{i % 3}", "time": i, "source": f"img{i}.jpg"} for i in range(count)])
    return index


def test_numpy_search_matches_direct_distances():
    gallery, queries = unit_rows(300), unit_rows(7, seed=1)
    answers = filled("numpy").search(queries, top_k=5)
    order, distances = direct_top_k(queries, gallery, 5)
    assert [[m.id for m in row] for row in answers] == order.tolist()
    np.testing.assert_allclose([[m.distance for m in row] for row in answers], distances, atol=1e-6)
    assert answers[0][0].metadata == {"camera": f"c{order[0, 0] % 3}", "time": int(order[0, 0]),
                                      "source": f"img{order[0, 0]}.jpg"}


def test_numpy_blocks_give_the_unblocked_answer(monkeypatch):
    gallery, queries = unit_rows(300), unit_rows(5, seed=2)
    monkeypatch.setattr(gallery_index, "NUMPY_BLOCK", 7)
    rows, products = gallery_index.exact_top_k(queries, gallery, 4)
    order, distances = direct_top_k(queries, gallery, 4)
    assert rows.tolist() == order.tolist()
    np.testing.assert_allclose(gallery_index.inner_products_to_distances(products), distances, atol=1e-6)


@pytest.mark.parametrize("exact_below", [10_000, 100])
def test_faiss_agrees_with_numpy(exact_below):
    pytest.importorskip("faiss")
    queries = unit_rows(20, seed=3)
    reference = filled("numpy").search(queries, top_k=10)
    index = filled("faiss", exact_below=exact_below, nlist=4, nprobe=4)  # nprobe = nlist: IVF scans everything
    assert index.kind == ("flat" if exact_below > 300 else "ivf")
    answers = index.search(queries, top_k=10)
    assert [[m.id for m in row] for row in answers] == [[m.id for m in row] for row in reference]
    np.testing.assert_allclose([[m.distance for m in row] for row in answers],
                               [[m.distance for m in row] for row in reference], atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_threshold_keeps_only_close_matches(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    index = filled(backend)
    queries = np.concatenate([unit_rows(300)[:1], -unit_rows(300)[:1]])  # one stored item, and its opposite
    near, far = index.search(queries, top_k=3, threshold=0.5)
    assert [m.id for m in near] == [0] and near[0].distance < 1e-3
    assert far == []  # "no match within the threshold"
    with pytest.raises(GalleryIndexError, match=r"threshold=2.5: .* \[0, 2\]"):
        index.search(queries, threshold=2.5)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_remove_then_search(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    index = filled(backend, exact_below=100, nlist=4, nprobe=4)
    queries = unit_rows(300)[:3]
    index.remove([0, 2])
    assert len(index) == 298
    answers = index.search(queries, top_k=1)
    assert answers[1][0].id == 1 and answers[0][0].id != 0 and answers[2][0].id != 2
    with pytest.raises(GalleryIndexError, match="1 not in the index"):
        index.remove([1, 0])
    assert len(index) == 298  # nothing removed
    new = index.add(unit_rows(2, seed=9))
    assert new.tolist() == [300, 301]  # ids are never reused


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_save_load_round_trip(tmp_path, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    index = filled(backend, exact_below=100, nlist=4, nprobe=2)
    index.remove([5])
    path = str(tmp_path / "gallery.idx")
    index.save(path)
    loaded = GalleryIndex.load(path, DIM, "abc123")
    assert loaded.kind == index.kind and len(loaded) == 299
    queries = unit_rows(10, seed=4)
    assert loaded.search(queries, 5) == index.search(queries, 5)
    assert loaded.metadata(7) == {"camera": "c1", "time": 7, "source": "img7.jpg"}
    assert [name for name in os.listdir(tmp_path)] == ["gallery.idx"]  # no temporary left behind


def test_another_encoder_is_refused(tmp_path):
    path = str(tmp_path / "gallery.idx")
    filled("numpy").save(path)
    with pytest.raises(GalleryIndexError, match=r"built by encoder abc123 \(16-d\), not by this one \(def, 32-d\)"):
        GalleryIndex.load(path, 32, "def")
    with pytest.raises(GalleryIndexError, match="built by encoder abc123"):
        GalleryIndex.load(path, DIM, "other")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_file_is_refused_in_one_line(tmp_path, damage):
    path = str(tmp_path / "gallery.idx")
    filled("numpy").save(path)
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-10] ^= 0xFF
    else:
        data = bytearray(b"hello world")
    open(path, "wb").write(bytes(data))
    with pytest.raises(GalleryIndexError) as error:
        GalleryIndex.load(path, DIM, "abc123")
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "gallery.idx")
    filled("numpy", count=10).save(path)
    before = open(path, "rb").read()
    monkeypatch.setattr(gallery_index.os, "fsync", lambda _: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        filled("numpy", count=20).save(path)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["gallery.idx"]


def test_bad_inputs():
    index = GalleryIndex(DIM, "h", backend="numpy")
    with pytest.raises(GalleryIndexError, match=r"shape \[N, 16\], got \(3, 8\)"):
        index.add(np.zeros((3, 8)))
    with pytest.raises(GalleryIndexError, match="2 entries for 3 embeddings"):
        index.add(unit_rows(3), [{}, {}])
    with pytest.raises(GalleryIndexError, match="NaN"):
        index.add(np.full((1, DIM), np.nan))
    assert index.search(unit_rows(2), 3) == [[], []]  # an empty gallery matches nothing


def test_choose_nprobe_takes_the_fewest_lists_reaching_the_recall_on_held_out_queries(tmp_path):
    pytest.importorskip("faiss")
    gallery, held_out = unit_rows(2000), unit_rows(40, seed=5)
    index = GalleryIndex(DIM, "abc123", backend="faiss", exact_below=100, nlist=32, nprobe=32)
    index.add(gallery)
    exact = direct_top_k(held_out, gallery, 10)[0]
    direct = {}
    for nprobe in (1, 2, 4, 8, 16, 32):  # every nprobe's recall measured directly with faiss
        index._faiss.nprobe = nprobe
        found = index._faiss.search(held_out, 10)[1]
        direct[nprobe] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), exact.tolist())])
    target = direct[8] - 1e-9  # reached at 8 lists (recall grows with nprobe), not at 4 on this data
    assert direct[4] < target
    recalls = index.choose_nprobe(held_out, target, top_k=10)
    assert index.nprobe == index._faiss.nprobe == 8 and sorted(recalls) == [1, 2, 4, 8]
    np.testing.assert_allclose([recalls[n] for n in (1, 2, 4, 8)], [direct[n] for n in (1, 2, 4, 8)])
    index.save(tmp_path / "g.idx")
    assert GalleryIndex.load(tmp_path / "g.idx")._faiss.nprobe == 8
    index.choose_nprobe(held_out, 1.0)  # every list scanned is exact search: recall 1 is reached at the latest there
    assert index.nprobe == min(nprobe for nprobe, recall in direct.items() if recall >= 1.0)


def test_choose_nprobe_refuses_an_exact_index_and_a_recall_outside_0_1():
    pytest.importorskip("faiss")
    with pytest.raises(GalleryIndexError, match="the index is flat .exact., not ivf"):
        filled("faiss").choose_nprobe(unit_rows(3))
    with pytest.raises(GalleryIndexError, match=r"target_recall=1.5: expected a recall in \(0, 1\]"):
        filled("faiss", exact_below=100, nlist=4).choose_nprobe(unit_rows(3), 1.5)
