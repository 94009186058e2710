"""The paper's analysis figures (Figs. 1, 4-8) as pure functions that write PNG files.

Every function draws on its own `matplotlib.figure.Figure` with the Agg canvas, never through
pyplot, so no global plotting state is read or changed. `path` is a file path (written atomically,
with acan_tf.io.atomic_path) or a writable binary file object such as `io.BytesIO` (for PNG bytes,
e.g. to log to TensorBoard); each function returns the `path` it was given.

Metrics (CMC, mAP, rank-1) are fractions in [0, 1], as `evaluation` computes them; the figures show
them in %. Camera ids are 0-based, as everywhere in acan_tf.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image

from acan_tf.data.records import camera_name
from acan_tf.io import atomic_path

PathOrFile = Union[str, os.PathLike, BinaryIO]
# One item of a query/gallery list: an image path, or a tracklet's frame paths.
ItemPaths = Union[str, Sequence[str]]
History = Sequence[Mapping[str, float]]

_DPI = 120
# Row sums of a row-normalised matrix: 1, or 0 for a camera with no images.
_ROW_SUM_TOLERANCE = 1e-3
_MATCH_COLOUR = "#1a9850"
_MISMATCH_COLOUR = "#d73027"


def subsample_indices(num_items: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `max_points` of `num_items` items, the same for the same seed."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if num_items <= max_points:
        return np.arange(num_items)
    return np.sort(np.random.default_rng(seed).choice(num_items, size=max_points, replace=False))


def plot_confusion_matrix(
    matrix: np.ndarray,
    path: PathOrFile,
    camera_names: Optional[Sequence[str]] = None,
    title: str = "Camera confusion matrix of D",
    vmax: Optional[float] = None,
) -> PathOrFile:
    """Heatmap of D's row-normalised camera confusion matrix (rows true, columns predicted; Fig. 8)."""
    return plot_confusion_matrices({title: matrix}, path, camera_names=camera_names, vmax=vmax)


def plot_confusion_matrices(
    matrices: Mapping[str, np.ndarray],
    path: PathOrFile,
    camera_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    vmax: Optional[float] = None,
) -> PathOrFile:
    """Several confusion matrices side by side (e.g. one per scheme) on one shared colour scale.

    The scale runs from 0 to `vmax`, by default the largest value shown; pass 1.0 to read the
    colours as absolute probabilities (a near-uniform matrix then looks flat, as it is).
    """
    if not matrices:
        raise ValueError("matrices is empty: expected at least one {name: confusion matrix}")
    checked = {name: _check_confusion(name, matrix) for name, matrix in matrices.items()}
    if camera_names is not None:
        for name, matrix in checked.items():
            if len(camera_names) != len(matrix):
                raise ValueError(
                    f"camera_names has {len(camera_names)} names but matrix {name!r} has "
                    f"{len(matrix)} cameras"
                )
    largest = max(len(matrix) for matrix in checked.values())
    panel_inches = max(3.8, 0.42 * largest + 1.6)
    figure = _new_figure((panel_inches * len(checked) + 1.2, panel_inches + (0.4 if title else 0.0)))
    axes = figure.subplots(1, len(checked), squeeze=False)[0]
    if vmax is None:
        vmax = max(float(matrix.max()) for matrix in checked.values()) or 1.0
    elif vmax <= 0:
        raise ValueError(f"vmax must be > 0, got {vmax}")
    for ax, (name, matrix) in zip(axes, checked.items()):
        names = camera_names or [str(camid) for camid in range(len(matrix))]
        image = _draw_confusion(ax, matrix, names, vmax)
        ax.set_title(name)
    figure.colorbar(image, ax=list(axes), shrink=0.85, label="P(predicted camera | true camera)")
    if title:
        figure.suptitle(title)
    return _save_png(figure, path)


def plot_tsne(
    features: np.ndarray,
    camids: Sequence[int],
    path: PathOrFile,
    max_points: int = 2000,
    seed: int = 0,
    perplexity: float = 30.0,
    title: str = "t-SNE of features, coloured by camera",
    camera_names: Sequence[str] | None = None,
) -> PathOrFile:
    """2-D t-SNE of the features, one colour per camera (Figs. 1, 7); `camera_names[camid]` labels the cameras."""
    # Imported here: scikit-learn is slow to import and only this figure needs it.
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float64)
    camids = np.asarray(camids)
    if features.ndim != 2 or features.shape[0] < 3 or features.shape[1] < 2:
        raise ValueError(
            f"features must be an (N, dim) array with N >= 3 and dim >= 2, got shape {features.shape}"
        )
    if camids.shape != (features.shape[0],):
        raise ValueError(
            f"camids must hold one camera id per feature: {features.shape[0]} features but "
            f"camids has shape {camids.shape}"
        )
    if not np.all(np.isfinite(features)):
        raise ValueError("features contain NaN or infinite values")
    if not np.issubdtype(camids.dtype, np.integer) or camids.min() < 0:
        raise ValueError(f"camids must be 0-based integer camera ids, got dtype {camids.dtype}")
    if perplexity <= 0 or max_points < 3:
        raise ValueError(f"perplexity must be > 0 and max_points >= 3, got {perplexity} and {max_points}")
    keep = subsample_indices(len(features), max_points, seed)
    features, camids = features[keep], camids[keep]
    # scikit-learn requires perplexity < n_samples.
    perplexity = min(perplexity, len(features) - 1.0)
    embedded = TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    ).fit_transform(features)

    figure = _new_figure((7.0, 6.0))
    ax = figure.subplots()
    # Colour by camera id, not by rank among the cameras present, so figures compare across runs.
    colours = _camera_colours(int(camids.max()) + 1)
    for camid in np.unique(camids):
        colour = colours[camid]
        points = embedded[camids == camid]
        ax.scatter(points[:, 0], points[:, 1], s=8, color=colour, label=_camera_label(int(camid), camera_names),
                   alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title} ({len(features)} points)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", markerscale=2.0)
    return _save_png(figure, path)


def plot_cmc(
    cmc_curves: Union[Mapping[str, np.ndarray], np.ndarray],
    path: PathOrFile,
    max_rank: int = 20,
    title: str = "CMC",
) -> PathOrFile:
    """CMC curve(s) from rank 1 to `max_rank`; a mapping gives one labelled line per entry."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    curves = _as_runs(cmc_curves)
    figure = _new_figure((6.0, 4.5))
    ax = figure.subplots()
    shown = 1
    for label, curve in curves.items():
        curve = _check_fractions(f"CMC curve {label or ''}".strip(), curve)[:max_rank]
        ranks = np.arange(1, len(curve) + 1)
        legend = f"{label} (rank-1 {100 * curve[0]:.1f}%)" if label else None
        ax.plot(ranks, 100 * curve, marker="o", markersize=3, label=legend)
        shown = max(shown, len(curve))
    ax.set_xlim(0.5, shown + 0.5)
    ax.set_xticks(sorted({1, *range(5, shown + 1, 5)}))
    _finish_metric_axes(ax, "Rank", "Matching rate (%)", title, with_legend=None not in curves)
    return _save_png(figure, path)


def plot_ranked_list(
    query_paths: Sequence[ItemPaths],
    gallery_paths: Sequence[ItemPaths],
    distances_or_ranking: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    path: PathOrFile,
    topk: int = 10,
    num_queries: int = 8,
    image_size: tuple[int, int] = (128, 64),
    camera_names: Sequence[str] | None = None,
) -> PathOrFile:
    """Queries and their top-k gallery matches, green border for a true match, red for a false one.

    `distances_or_ranking` is either a float (Q, G) distance matrix or an integer (Q, >=1) array of
    gallery indices, best first. Tracklets show their first frame; `image_size` is (height, width);
    `camera_names[camid]` names the cameras.
    """
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    _check_same_length("query", query_paths=query_paths, q_pids=q_pids, q_camids=q_camids)
    _check_same_length("gallery", gallery_paths=gallery_paths, g_pids=g_pids, g_camids=g_camids)
    if topk < 1 or num_queries < 1:
        raise ValueError(f"topk and num_queries must be >= 1, got {topk} and {num_queries}")
    ranking = _ranking(distances_or_ranking, len(query_paths), len(gallery_paths))

    # Evenly spaced queries, so a pid-sorted query set shows several identities.
    rows = np.unique(np.linspace(0, len(query_paths) - 1, min(num_queries, len(query_paths))).round())
    height, width = image_size
    figure = _new_figure((0.85 * (topk + 1) * width / 64, 1.75 * len(rows) * height / 128 + 0.3))
    axes = figure.subplots(len(rows), topk + 1, squeeze=False)

    def show(ax: Axes, item: ItemPaths, label: str, border: str) -> None:
        with Image.open(_first_frame(item)) as image:
            ax.imshow(np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=7, labelpad=2)
        for spine in ax.spines.values():
            spine.set_edgecolor(border)
            spine.set_linewidth(3)

    for row_axes, q in zip(axes, rows.astype(int)):
        show(row_axes[0], query_paths[q], f"pid {q_pids[q]} {_camera_label(int(q_camids[q]), camera_names)}", "black")
        # Market protocol: the same person seen by the query's own camera is not a retrieval.
        ranked = [
            g for g in ranking[q] if not (g_pids[g] == q_pids[q] and g_camids[g] == q_camids[q])
        ][:topk]
        for ax, g in zip(row_axes[1:], ranked):
            border = _MATCH_COLOUR if g_pids[g] == q_pids[q] else _MISMATCH_COLOUR
            show(ax, gallery_paths[g], f"pid {g_pids[g]} {_camera_label(int(g_camids[g]), camera_names)}", border)
        for ax in row_axes[1 + len(ranked):]:
            ax.axis("off")
    axes[0, 0].set_title("query", fontsize=9)
    for rank, ax in enumerate(axes[0, 1:], start=1):
        ax.set_title(f"rank {rank}", fontsize=9)
    return _save_png(figure, path)


def plot_convergence(
    history: Union[History, Mapping[str, History]],
    path: PathOrFile,
    title: str = "Convergence",
) -> PathOrFile:
    """mAP and rank-1 against epoch from report.json "evaluations", one line per run (Fig. 6)."""
    runs = _as_runs(history)
    figure = _new_figure((10.0, 4.2))
    axes = figure.subplots(1, 2)
    for label, evaluations in runs.items():
        name = f"history {label!r}" if label else "history"
        if len(evaluations) == 0:
            raise ValueError(f"{name} is empty: expected a list of evaluations like "
                             "{'epoch': 5, 'mAP': 0.31, 'rank1': 0.52}")
        for index, evaluation in enumerate(evaluations):
            missing = {"epoch", "mAP", "rank1"} - set(evaluation)
            if missing:
                raise ValueError(f"{name}[{index}] lacks {sorted(missing)}: got keys {sorted(evaluation)}")
        evaluations = sorted(evaluations, key=lambda evaluation: evaluation["epoch"])
        epochs = [evaluation["epoch"] for evaluation in evaluations]
        for ax, metric in zip(axes, ("mAP", "rank1")):
            values = _check_fractions(f"{name} {metric}", [e[metric] for e in evaluations])
            ax.plot(epochs, 100 * values, marker="o", markersize=3, label=label)
    for ax, metric in zip(axes, ("mAP", "Rank-1")):
        _finish_metric_axes(ax, "Epoch", f"{metric} (%)", metric, with_legend=None not in runs)
    figure.suptitle(title)
    return _save_png(figure, path)


def plot_sweep(
    values: Sequence[Union[float, int, str]],
    metrics: Mapping[str, Sequence],
    path: PathOrFile,
    xlabel: str,
    stds: Optional[Mapping[str, Sequence[float]]] = None,
    title: Optional[str] = None,
) -> PathOrFile:
    """A parameter sweep (λ for Fig. 4, D's width for Fig. 5): one line per metric, mean ± std.

    Each metric holds one entry per value: a number, or a list of numbers (e.g. one per seed) that
    gives the mean and standard deviation; `stds` gives the deviations explicitly instead.
    """
    if not values:
        raise ValueError("values is empty: expected the swept parameter values")
    if not metrics:
        raise ValueError("metrics is empty: expected e.g. {'mAP': [...], 'rank1': [...]}")
    figure = _new_figure((6.0, 4.5))
    ax = figure.subplots()
    positions = np.arange(len(values))
    for name, entries in metrics.items():
        if len(entries) != len(values):
            raise ValueError(f"metric {name!r} has {len(entries)} entries for {len(values)} values")
        samples = [_check_fractions(f"metric {name!r}", np.atleast_1d(entry)) for entry in entries]
        means = np.array([sample.mean() for sample in samples])
        if stds is not None and name in stds:
            errors = np.asarray(stds[name], dtype=np.float64)
            if errors.shape != means.shape:
                raise ValueError(f"stds[{name!r}] has shape {errors.shape}, expected {means.shape}")
        else:
            errors = np.array([sample.std() for sample in samples])
        ax.errorbar(
            positions, 100 * means, yerr=100 * errors if errors.any() else None,
            marker="o", capsize=4, label=name,
        )
    ax.set_xticks(positions, [f"{value:g}" if not isinstance(value, str) else value for value in values])
    _finish_metric_axes(ax, xlabel, "Accuracy (%)", title or f"Sensitivity to {xlabel}", with_legend=True)
    return _save_png(figure, path)


def _new_figure(size: tuple[float, float]) -> Figure:
    figure = Figure(figsize=size, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Figure, path: PathOrFile) -> PathOrFile:
    if hasattr(path, "write"):
        figure.savefig(path, format="png")
    else:
        with atomic_path(os.fspath(path)) as temporary:
            figure.savefig(temporary, format="png")
    return path


def _as_runs(data: Union[Mapping[str, object], object]) -> dict[Optional[str], object]:
    """A mapping of labelled runs as is; a single run under the label None."""
    if isinstance(data, Mapping):
        if not data:
            raise ValueError("got an empty mapping: expected at least one {label: data}")
        return dict(data)
    return {None: data}


def _check_fractions(name: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    if not np.all((array >= 0) & (array <= 1)):
        raise ValueError(f"{name} must hold fractions in [0, 1] (not %), got {array.tolist()}")
    return array


def _finish_metric_axes(ax: Axes, xlabel: str, ylabel: str, title: str, with_legend: bool) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if with_legend:
        ax.legend(fontsize="small")


def _check_confusion(name: str, matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"confusion matrix {name!r} must be square (C, C), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError(f"confusion matrix {name!r} must hold finite non-negative values")
    sums = matrix.sum(axis=1)
    if not np.all((np.abs(sums - 1) < _ROW_SUM_TOLERANCE) | (sums == 0)):
        raise ValueError(
            f"confusion matrix {name!r} must be row-normalised (rows sum to 1, or 0 for a camera "
            f"without images), got row sums {np.round(sums, 4).tolist()}"
        )
    return matrix


def _draw_confusion(ax: Axes, matrix: np.ndarray, names: Sequence[str], vmax: float) -> AxesImage:
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=vmax)
    ticks = np.arange(len(matrix))
    ax.set_xticks(ticks, names, fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel("Predicted camera")
    ax.set_ylabel("True camera")
    # Values stay readable up to about ten cameras; beyond that the colour carries them.
    if len(matrix) <= 10:
        for (row, column), value in np.ndenumerate(matrix):
            colour = "white" if value > 0.6 * vmax else "black"
            ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    return image


def _camera_label(camid: int, camera_names: Sequence[str] | None) -> str:
    """A camera's name: the dataset's, or a benchmark's numbered name when none is given."""
    return camera_names[camid] if camera_names is not None else camera_name(camid)


def _camera_colours(num_cameras: int) -> list[tuple[float, float, float, float]]:
    if num_cameras <= 10:
        return [colormaps["tab10"](index) for index in range(num_cameras)]
    if num_cameras <= 20:
        return [colormaps["tab20"](index) for index in range(num_cameras)]
    return [colormaps["turbo"](value) for value in np.linspace(0, 1, num_cameras)]


def _check_same_length(split: str, **columns: Sequence) -> None:
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"{split} inputs must be non-empty and of equal length, got lengths {lengths}")


def _ranking(distances_or_ranking: np.ndarray, num_query: int, num_gallery: int) -> np.ndarray:
    array = np.asarray(distances_or_ranking)
    if array.ndim != 2 or array.shape[0] != num_query:
        raise ValueError(
            f"distances_or_ranking must have one row per query ({num_query}), got shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating):
        if array.shape[1] != num_gallery:
            raise ValueError(
                f"distance matrix must be (num_query, num_gallery) = ({num_query}, {num_gallery}), "
                f"got shape {array.shape}"
            )
        return np.argsort(array, axis=1, kind="stable")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"distances_or_ranking must be float distances or integer indices, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= num_gallery):
        raise ValueError(f"ranked gallery indices must lie in [0, {num_gallery}), got {array.min()}..{array.max()}")
    return array


def _first_frame(item: ItemPaths) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if len(item) == 0:
        raise ValueError("a tracklet in the ranked list has no frame paths")
    return os.fspath(item[0])
