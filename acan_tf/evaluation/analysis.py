"""The paper's analyses of one evaluation, written beside a run: PNG figures, TensorBoard images and the projector.

Figures (each `<plots_dir>/<name>.png` and the TensorBoard image `analysis/<name>`):

- camera_confusion: D's row-normalised camera confusion on the test features (Fig. 8), when D was evaluated;
- tsne: t-SNE of the query and gallery features coloured by camera (Figs. 1, 7);
- cmc: the CMC curve to rank 20;
- ranked_list: queries and their top-10 gallery entries, true matches in green, false ones in red;
- convergence: mAP and rank-1 per evaluation (Fig. 6), when the history holds at least two evaluations.

The inter-camera discrepancy (Table VII) is a metric of the evaluation itself, not a figure. The features
go to TensorBoard's projector with their pid, camid and split (query or gallery).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from acan_tf.data.records import Record, camera_name, frame_paths
from acan_tf.evaluation import plots
from acan_tf.evaluation.metrics import pairwise_distance
from acan_tf.evaluation.reid import record_ids
from acan_tf.evaluation.tensorboard import log_png_images, write_projector

# Queries shown in the ranked list, and gallery entries per query (the issue asks for the top 10).
RANKED_QUERIES = 8
RANKED_TOPK = 10


def camera_names(camera_classes: Mapping[int, int], names: Sequence[str] | None = None) -> list[str]:
    """Names of D's classes in class order, from {camid: class index} and the dataset's `names[camid]` (a benchmark's
    numbered names when None)."""
    ordered = [camid for camid, _ in sorted(camera_classes.items(), key=lambda item: item[1])]
    return [names[camid] if names is not None else camera_name(camid) for camid in ordered]


def write_analyses(
    plots_dir: str,
    logdir: str,
    evaluation: Mapping[str, object],
    query: Sequence[Record],
    gallery: Sequence[Record],
    history: Sequence[Mapping[str, float]] = (),
    camera_names: Sequence[str] | None = None,
    step: int = 0,
    max_points: int = 2000,
    dataset_camera_names: Sequence[str] | None = None,
) -> dict[str, str]:
    """Writes the figures of an evaluation made with keep_features=True; returns {name: PNG path}."""
    # PNGs go to plots_dir, TensorBoard images (at `step`) and the projector to logdir.
    # `history` is report.json's "evaluations"; `camera_names` label D's classes in order, `dataset_camera_names`
    # the dataset's cameras by camid (t-SNE, ranked list). With re-ranked "distances" in the evaluation, the ranked
    # list shows the re-ranked order.
    missing = [key for key in ("query_features", "gallery_features", "cmc") if key not in evaluation]
    if missing:
        raise ValueError(f"evaluation lacks {missing}: evaluate with keep_features=True")
    q_feats = np.asarray(evaluation["query_features"])
    g_feats = np.asarray(evaluation["gallery_features"])
    if len(q_feats) != len(query) or len(g_feats) != len(gallery):
        raise ValueError(
            f"evaluation has {len(q_feats)} query and {len(g_feats)} gallery features for {len(query)} query "
            f"and {len(gallery)} gallery records"
        )
    os.makedirs(plots_dir, exist_ok=True)

    def path(name: str) -> str:
        """Where figure `name` goes."""
        return os.path.join(plots_dir, f"{name}.png")

    features = np.concatenate([q_feats, g_feats])
    pids, camids = (np.concatenate(pair) for pair in zip(record_ids(query), record_ids(gallery)))
    written = {}
    if evaluation.get("camera_confusion") is not None:
        written["camera_confusion"] = plots.plot_confusion_matrix(
            np.asarray(evaluation["camera_confusion"]), path("camera_confusion"), camera_names=camera_names
        )
    written["tsne"] = plots.plot_tsne(features, camids, path("tsne"), max_points=max_points,
                                      camera_names=dataset_camera_names)
    written["cmc"] = plots.plot_cmc(np.asarray(evaluation["cmc"]), path("cmc"), max_rank=20)
    written["ranked_list"] = _ranked_list(q_feats, g_feats, query, gallery, evaluation.get("distances"),
                                          path("ranked_list"), dataset_camera_names)
    if len(history) >= 2:
        written["convergence"] = plots.plot_convergence(list(history), path("convergence"))

    log_png_images(logdir, {f"analysis/{name}": png for name, png in written.items()}, step)
    split = ["query"] * len(query) + ["gallery"] * len(gallery)
    write_projector(logdir, features, {"pid": pids, "camid": camids, "split": split}, max_points=10 * max_points)
    return written


def _ranked_list(q_feats, g_feats, query, gallery, distances, path: str, camera_names=None) -> str:
    """The ranked-list figure for evenly spaced queries that have a true match in another camera."""
    q_pids, q_camids = record_ids(query)
    g_pids, g_camids = record_ids(gallery)
    # The Market-1501 protocol's test: a true match is the same pid seen by another camera.
    gallery_cameras: dict[int, set[int]] = {}
    for pid, camid in zip(g_pids.tolist(), g_camids.tolist()):
        gallery_cameras.setdefault(pid, set()).add(camid)
    has_match = np.array([bool(gallery_cameras.get(pid, set()) - {camid})
                          for pid, camid in zip(q_pids.tolist(), q_camids.tolist())])
    candidates = np.flatnonzero(has_match) if has_match.any() else np.arange(len(query))
    shown = candidates[np.unique(np.linspace(0, len(candidates) - 1,
                                             min(RANKED_QUERIES, len(candidates))).round().astype(int))]
    rows = pairwise_distance(q_feats[shown], g_feats) if distances is None else np.asarray(distances)[shown]
    return plots.plot_ranked_list(
        [frame_paths(query[i]) for i in shown], [frame_paths(r) for r in gallery], rows.astype(np.float64),
        q_pids[shown], g_pids, q_camids[shown], g_camids, path, topk=RANKED_TOPK, num_queries=len(shown),
        camera_names=camera_names,
    )

