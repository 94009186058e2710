"""Linking camera-local identities across cameras, measured on held-out people.

The test split is read as deployment would see new footage: every (camera, person) group of its query and gallery is
one camera-local identity, and training's association rule (acan_tf.training.association.associate, the one
implementation) links them. Its threshold is chosen on a validation split of training identities, never on the test
split: the similarity of the association's centred proxies at a false-positive rate (acan_tf.evaluation.calibration),
the rule `python -m acan_tf.link` applies with the model card's threshold (acan_tf.deploy.linker.link). The true ids
are read only to measure. It evaluates a run or an export, so it sits in the layer of acan_tf.evaluation.runner.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.data import load_existing_dataset
from acan_tf.data.records import Record, camera_local_labels
from acan_tf.data.validation import carve_validation
from acan_tf.deploy.calibration import calibrate_links, check_fpr, identified_records
from acan_tf.deploy.linker import link
from acan_tf.deploy.saved_model_features import saved_model_features
from acan_tf.evaluation.features import extract_features, frame_embedder
from acan_tf.evaluation.reid import record_ids
from acan_tf.evaluation.runner import EvaluateError, read_model_card
from acan_tf.model.builder import load_run
from acan_tf.run_dir import RunDir
from acan_tf.training.association import Association, association_quality, component_statistics, proxy_global_ids


def local_identities(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """(cameras, camera-local ids) [N] of records: each (camera, person) group is one local id."""
    labels = np.array(camera_local_labels(records), dtype=np.int64).reshape(-1, 2)
    return labels[:, 0], labels[:, 1]


def link_quality(association: Association, proxy_pids: np.ndarray, camera_names: Sequence[str]) -> dict:
    """Pairwise precision, recall and F1 of the links, the share of people recovered exactly, and per camera pair."""
    proxies, pseudo_ids = association.proxies, association.pseudo_ids
    quality = {**component_statistics(association), **association_quality(pseudo_ids, proxies.cameras, proxy_pids)}
    precision, recall = quality["pair_precision"], quality["pair_recall"]
    quality["pair_f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # A proxy left alone is its own group; a person is recovered exactly when their proxies form one whole group.
    groups = np.where(pseudo_ids >= 0, pseudo_ids, pseudo_ids.max(initial=-1) + 1 + np.arange(len(pseudo_ids)))
    group_sizes = np.bincount(groups)
    exact, multi_camera, multi_exact = 0, 0, 0
    people = np.unique(proxy_pids)
    for person in people:
        members = groups[proxy_pids == person]
        whole = len(np.unique(members)) == 1 and group_sizes[members[0]] == len(members)
        exact += whole
        if len(members) > 1:
            multi_camera += 1
            multi_exact += whole
    quality.update(people=len(people), people_recovered_exactly=exact / len(people) if len(people) else 0.0,
                   people_in_several_cameras=multi_camera,
                   several_camera_people_recovered_exactly=multi_exact / multi_camera if multi_camera else 0.0,
                   per_camera_pair=camera_pair_table(groups, proxies.cameras, proxy_pids, camera_names))
    return quality


def camera_pair_table(groups: np.ndarray, cameras: np.ndarray, proxy_pids: np.ndarray,
                      camera_names: Sequence[str]) -> list[dict]:
    """Per pair of cameras: true, predicted and correct cross-camera proxy pairs, precision and recall."""
    true, predicted, correct = {}, {}, {}
    by_person = {}
    for index, person in enumerate(proxy_pids.tolist()):
        by_person.setdefault(person, []).append(index)
    by_group = {}
    for index, group in enumerate(groups.tolist()):
        by_group.setdefault(group, []).append(index)
    for members, counts in ((by_person.values(), true), (by_group.values(), predicted)):
        for indices in members:
            for first, second in itertools.combinations(indices, 2):
                pair = tuple(sorted((int(cameras[first]), int(cameras[second]))))
                if pair[0] != pair[1]:
                    counts[pair] = counts.get(pair, 0) + 1
                    if counts is predicted and proxy_pids[first] == proxy_pids[second]:
                        correct[pair] = correct.get(pair, 0) + 1
    rows = []
    for pair in sorted(set(true) | set(predicted)):
        t, p, c = true.get(pair, 0), predicted.get(pair, 0), correct.get(pair, 0)
        rows.append({"cameras": [camera_names[pair[0]], camera_names[pair[1]]], "true_pairs": t, "predicted_pairs": p,
                     "correct_pairs": c, "precision": c / p if p else 0.0, "recall": c / t if t else 0.0})
    return rows


def link_threshold(features: np.ndarray, records: Sequence[Record], fpr: float, centre_per_camera: bool) -> dict:
    """The association's similarity threshold at false-positive rate `fpr` of a labelled (validation) split."""
    pids, cameras = record_ids(records)
    calibration = calibrate_links(features, cameras, pids, fpr, centre_per_camera)
    return {key: calibration[key] for key in ("similarity_threshold", "threshold", "fpr_target", "fpr", "tpr",
                                              "pairs")}


def evaluate_linking(test_features: np.ndarray, test_records: Sequence[Record], similarity_threshold: float,
                     camera_names: Sequence[str], centre_per_camera: bool = True) -> dict:
    """Links the test split's (camera, person) groups with the rule at `similarity_threshold`; its quality.
    `test_records` are identified people only (calibration.identified_records), one feature row each."""
    cameras, local_ids = local_identities(test_records)
    association = link(test_features, cameras, local_ids, similarity_threshold, centre_per_camera)
    pids, _ = record_ids(test_records)
    return link_quality(association, proxy_global_ids(association.proxies, cameras, local_ids, pids), camera_names)


def link_document(embed: Callable[[Sequence[Record]], np.ndarray], config: Config, validation_identities: int | None,
                  fpr: float) -> dict:
    """Linking of the run's test split by `embed` (records -> features), its threshold chosen on validation
    identities carved from the training split as training carves them (the run's own, by default)."""
    count = validation_identities or config.validation_identities
    if not count:
        raise EvaluateError("--link: pass --validation_identities=N (the run held no identities out): linking's "
                            "threshold is chosen on N training identities, never on the test split")
    check_fpr(fpr, "--link_fpr")
    dataset = load_existing_dataset(config.dataset, config.data_root)
    carved = carve_validation(dataset, count, config.seed)
    validation = identified_records(carved)
    threshold = link_threshold(embed(validation), validation, fpr, config.association_centering)
    test = identified_records(dataset)
    quality = evaluate_linking(embed(test), test, threshold["similarity_threshold"], dataset.camera_names,
                               config.association_centering)
    threshold.update(chosen_on=f"validation: {count} training identities (seed {config.seed})",
                     validation_identities=count, held_out_in_training=count == config.validation_identities)
    return {"threshold": threshold, "test_split": {"dataset": dataset.name, "root": dataset.root, "items": len(test)},
            "rule": "acan_tf.training.association.associate (mutual nearest neighbours across cameras, "
                    "camera-disjoint components)", "centre_per_camera": config.association_centering, **quality}


def format_linking(document: dict) -> str:
    """The printed summary: the threshold and its source, pairwise figures, exact recovery, per camera pair."""
    threshold = document["threshold"]
    lines = [f"linking on {document['test_split']['dataset']} test split ({document['num_proxies']} (camera, person) "
             f"local ids): threshold {threshold['similarity_threshold']:.4f} cosine of centred proxies (distance "
             f"{threshold['threshold']:.4f}, FPR {threshold['fpr']:.2g} on {threshold['chosen_on']})",
             f"pairwise precision {100 * document['pair_precision']:.2f} %, recall {100 * document['pair_recall']:.2f} "
             f"%, F1 {100 * document['pair_f1']:.2f} % ({document['correct_pairs']} of {document['predicted_pairs']} "
             f"predicted, {document['true_pairs']} true); people recovered exactly "
             f"{100 * document['people_recovered_exactly']:.2f} % (seen by several cameras: "
             f"{100 * document['several_camera_people_recovered_exactly']:.2f} %)"]
    for row in document["per_camera_pair"]:
        lines.append(f"  {row['cameras'][0]} - {row['cameras'][1]}: precision {100 * row['precision']:.1f} %, "
                     f"recall {100 * row['recall']:.1f} % ({row['correct_pairs']}/{row['predicted_pairs']} "
                     f"predicted, {row['true_pairs']} true)")
    return "\n".join(lines)


def link_run(run_dir: str, checkpoint: str, validation_identities: int | None, fpr: float,
             batch_size: int | None = None) -> dict:
    """Linking evaluation of a run's checkpoint; also recorded in its report.json (`linking`) once it finished."""
    config, acan, _ = load_run(run_dir, checkpoint)
    batch = batch_size or config.eval_batch_size
    embed = frame_embedder(acan.encoder, config.image_height, config.image_width)
    document = link_document(
        lambda records: extract_features(embed, records, config.image_height, config.image_width, batch),
        config, validation_identities, fpr)
    document["model"] = {"run_dir": os.path.abspath(run_dir), "checkpoint": checkpoint}
    folder = RunDir(run_dir)
    if folder.is_finished():
        report = folder.read_report()
        report["linking"] = document
        folder.write_report(report)
    return document


def link_saved_model(path: str, validation_identities: int | None, fpr: float, batch_size: int = 128) -> dict:
    """Linking evaluation of an exported SavedModel, with the configuration of the run it was exported from."""
    card = read_model_card(path)
    run_dir = card.get("run_dir")
    if not run_dir or not RunDir(run_dir).has_config():
        raise EvaluateError(f"--link: the run directory {run_dir} of {path} is gone; its config names the dataset and "
                            "the validation identities linking's threshold is chosen on")
    config = RunDir(run_dir).read_config()
    model = tf.saved_model.load(path)
    height, width = card["input"]["height"], card["input"]["width"]
    document = link_document(lambda records: saved_model_features(model, records, height, width, batch_size),
                             config, validation_identities, fpr)
    document["model"] = {"saved_model": os.path.abspath(path)}
    return document
