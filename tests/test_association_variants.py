"""The association's variants in training (issue 18): their flags, the growing link budget, F's teacher, the link
confidences and the weighted cross-camera triplet loss, each against a direct computation, and a tiny run each."""

import dataclasses
import math

from acan_tf import losses

import keras
import numpy as np
import pytest

from acan_tf.config import ConfigError
from acan_tf.data.pipeline import TrainingBatches, training_dataset
from acan_tf.data.sampling import training_set
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.model.acan import ACAN
from acan_tf.model.discriminator import build_discriminator
from acan_tf.training import cross_camera
from acan_tf.training.association import associate, link_margins, proxy_confidences
from acan_tf.training.cross_camera import (
    CrossCameraStage,
    CrossCameraState,
    describe_stages,
    link_budget,
    make_round,
    num_proxies,
    supervised_ids,
)
from acan_tf.training.trainer import run
from tests.test_cross_camera import NO_AUGMENTATION, config, mean_colour, people, step_data  # noqa: F401 (a fixture)
from tests.tiny_runs import tiny_config


def loop_weighted_triplet(embeddings, pids, weights, margin):
    """sum_a w_a l_a / sum_a w_a over the anchors with a negative, l_a the batch-hard term, by loops."""
    dist = np.sqrt(((embeddings[:, None] - embeddings[None]) ** 2).sum(-1))
    total, weight = 0.0, 0.0
    for a in range(len(embeddings)):
        negatives = [dist[a, q] for q in range(len(embeddings)) if pids[q] != pids[a]]
        if not negatives:
            continue
        hardest = max(dist[a, p] for p in range(len(embeddings)) if pids[p] == pids[a])
        total += weights[a] * max(0.0, margin + hardest - min(negatives))
        weight += weights[a]
    return total / weight if weight else 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_cross_camera_loss_matches_a_direct_computation(seed):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(12, 5)).astype(np.float32)
    pids = np.repeat([3, 7, 9], 4)
    weights = rng.uniform(0, 1, 12).astype(np.float32)
    got = float(losses.cross_camera_triplet_loss(embeddings, pids, 0.4, weights))
    assert got == pytest.approx(loop_weighted_triplet(embeddings, pids, weights, 0.4), rel=1e-5)
    equal = float(losses.cross_camera_triplet_loss(embeddings, pids, 0.4, np.full(12, 0.3, np.float32)))
    assert equal == pytest.approx(float(losses.cross_camera_triplet_loss(embeddings, pids, 0.4)), rel=1e-6)
    assert float(losses.cross_camera_triplet_loss(embeddings, pids, 0.4, np.zeros(12, np.float32))) == 0.0


def test_the_link_budget_grows_linearly_to_its_fraction_in_the_last_round():
    settings = config(epochs=7, association_first_epoch=2, association_every=2, association_budget=0.6)
    # Rounds before 0-based epochs 1, 3 and 5: a third, two thirds and all of 0.6 x 10 proxies.
    assert [link_budget(settings, epoch, 10) for epoch in (1, 3, 5)] == [2, 4, 6]
    assert link_budget(dataclasses.replace(settings, association_budget=0.0), 5, 10) is None


def small_acan(teacher_momentum=0.0):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4, 2, 3))
    hidden = keras.layers.BatchNormalization()(keras.layers.Flatten()(inputs / 255.0))
    encoder = keras.Model(inputs, keras.layers.Dense(5)(hidden))
    teacher = None
    if teacher_momentum:
        teacher = keras.models.clone_model(encoder)
        teacher.set_weights(encoder.get_weights())
    acan = ACAN(encoder, build_discriminator(5, 2, width=3), scheme="none", pseudo_weight=0.5, teacher=teacher,
                teacher_momentum=teacher_momentum)
    acan.compile(f_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    return acan


def test_the_teacher_is_the_moving_average_of_every_weight_of_f_after_each_step():
    acan = small_acan(teacher_momentum=0.75)
    teacher = [np.array(v) for v in acan.teacher.weights]
    for seed in range(3):
        acan.train_step(step_data(seed))
        student = [np.array(v) for v in acan.encoder.weights]
        teacher = [0.75 * t + 0.25 * s for t, s in zip(teacher, student)]
        for expected, variable in zip(teacher, acan.teacher.weights):
            np.testing.assert_allclose(np.array(variable), expected, rtol=1e-5, atol=1e-6)
    moving_mean = [v for v in acan.teacher.weights if "moving_mean" in v.path]
    assert moving_mean and np.any(np.array(moving_mean[0]) != 0), "batch-norm statistics follow F too"
    assert not acan.teacher.trainable_weights and len(acan.teacher.weights) == len(acan.encoder.weights)
    with pytest.raises(ValueError, match="teacher: expected a copy of the encoder"):
        ACAN(acan.encoder, acan.discriminator, teacher=acan.discriminator, teacher_momentum=0.5)


def test_the_train_step_weights_the_pseudo_anchors_by_their_confidence():
    acan = small_acan()
    weights = [1.0, 0.5, 0.0, 0.2, 0.9, 0.9]
    data = step_data(0, weights)
    # One forward pass over the three batches, as the step makes it (its batch normalisation sees all of them).
    batches = np.concatenate([data["triplet_images"], data["camera_images"], data["pseudo_images"]])
    features = acan.encoder(batches, training=True).numpy()[-6:]
    logs = acan.train_step(data)
    expected = loop_weighted_triplet(features, data["pseudo_ids"], weights, 0.3)
    assert float(logs["pseudo_loss"]) == pytest.approx(expected, rel=1e-4)


def test_the_pseudo_batch_carries_each_items_weight(people):  # noqa: F811 (the fixture)
    train = training_set(people, min_ids=4)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, 4, 2, 6, 1, seed=3)
    weights = np.linspace(0.1, 0.9, len(train.records)).astype(np.float32)
    weighted = batches.with_pseudo_ids(supervised_ids(train), weights)
    plain = batches.with_pseudo_ids(supervised_ids(train))
    for step, (with_weights, without) in enumerate(zip(training_dataset(weighted, 16, 8, NO_AUGMENTATION).take(2),
                                                       training_dataset(plain, 16, 8, NO_AUGMENTATION).take(2))):
        items, _ = weighted.indices(step)
        np.testing.assert_array_equal(with_weights["pseudo_weights"].numpy(), weights[items[-weighted.pseudo_size:]])
        assert "pseudo_weights" not in without
        for key in without:
            np.testing.assert_array_equal(with_weights[key].numpy(), without[key].numpy())


def test_a_confidence_round_gives_each_item_its_proxys_confidence_and_the_state_keeps_it(people):  # noqa: F811
    train = training_set(people, min_ids=4)
    settings = config(association_confidence=True, association_threshold=-1.0)
    made = make_round(settings, train, mean_colour, epoch=1, step=10)
    features = l2_normalize(extract_features(mean_colour, train.records, 32, 16, 8))
    association = associate(features, train.classes, train.local_ids, -1.0)
    margins = link_margins(association)
    expected = proxy_confidences(association, margins)[association.proxies.index_of(train.classes, train.local_ids)]
    np.testing.assert_allclose(made.confidences, expected, rtol=1e-4, atol=1e-5)
    assert made.record["mean_link_confidence"] == pytest.approx(float(margins.mean()), rel=1e-4)
    assert np.all(made.confidences[made.pseudo_ids >= 0] > 0)

    stage = CrossCameraStage(settings, train, None, lambda values: values)
    state = stage.associate(CrossCameraState(None), mean_colour, epoch=1, step=10)
    restored = CrossCameraState.from_json(state.to_json())
    np.testing.assert_array_equal(restored.confidences, state.confidences)
    plain = CrossCameraStage(config(), train, None, lambda values: values).associate(CrossCameraState(None),
                                                                                     mean_colour, 1, 10)
    assert plain.confidences is None and "confidences" not in plain.to_json()


def test_a_budget_round_makes_at_most_its_links_and_records_them(people):  # noqa: F811
    train = training_set(people, min_ids=4)
    settings = config(epochs=3, association_first_epoch=2, association_budget=0.5)
    made = make_round(settings, train, mean_colour, epoch=1, step=10)
    budget = link_budget(settings, 1, num_proxies(train))
    assert made.record["link_budget"] == budget == 5  # the first of 2 rounds: a quarter of 18 proxies, rounded up
    assert made.record["num_links"] == budget and made.record["pair_precision"] == 1.0


def test_the_stages_name_each_variant_switched_on():
    assert describe_stages(config()).endswith("(pseudo-identities from features and camera-local ids)")
    stages = describe_stages(config(association_distance="jaccard", association_budget=0.5,
                                    association_teacher_momentum=0.99, association_confidence=True))
    assert stages.endswith("camera-local ids; jaccard similarity; link budget 0.5; teacher F, momentum 0.99; "
                           "confidence-weighted loss)")


@pytest.mark.parametrize("flags, message", [
    (dict(association_distance="euclidean"), "--association_distance='euclidean': expected one of cosine, jaccard"),
    (dict(association_k1=0), "--association_k1=0: expected an integer >= 1"),
    (dict(association_k2=0), "--association_k2=0: expected an integer >= 1"),
    (dict(association_budget=-0.5), "--association_budget=-0.5: expected a number >= 0"),
    (dict(association_teacher_momentum=1.0), "--association_teacher_momentum=1.0: expected a number in [0, 1)"),
    (dict(association_teacher_momentum=-0.1), "--association_teacher_momentum=-0.1: expected a number in [0, 1)"),
])
def test_bad_variant_flags_are_one_line_naming_the_flag(flags, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)")):
        config(**flags)


@pytest.mark.parametrize("flags, limit, message", [
    (dict(association_distance="jaccard"), "JACCARD_MAX_PROXIES",
     "--association_distance=jaccard: 18 camera-local identities need two 18² float32 matrices"),
    (dict(association_budget=0.5), "BUDGET_MAX_PROXIES",
     "--association_budget=0.5: 18 camera-local identities need a 18² similarity matrix"),
])
def test_a_training_set_too_large_for_a_variant_is_refused_before_training(people, monkeypatch, flags, limit,  # noqa
                                                                           message):
    monkeypatch.setattr(cross_camera, limit, 10)
    train = training_set(people, min_ids=4)
    with pytest.raises(ConfigError, match=message):
        CrossCameraStage(config(**flags), train, None, lambda values: values)


@pytest.mark.slow  # two tiny training runs, two variants each (every variant composes with the others)
@pytest.mark.parametrize("flags", [
    dict(association_distance="jaccard", association_k1=4, association_k2=2, association_confidence=True),
    dict(association_budget=0.5, association_teacher_momentum=0.9),
], ids=["jaccard+confidence", "budget+teacher"])
def test_a_tiny_run_with_each_variant_measures_every_round(tiny_tree, tmp_path, flags):
    settings = tiny_config(tiny_tree, str(tmp_path / "run"), cross_camera="association", epochs=3,
                           association_first_epoch=2, association_threshold=-1.0, **flags)
    report = run(settings)
    rounds = report["association"]
    assert [r["epoch"] for r in rounds] == [2, 3]
    for record in rounds:
        assert 0.0 <= record["pair_precision"] <= 1.0 and 0.0 <= record["pair_recall"] <= 1.0
    assert np.isfinite(report["final"]["mAP"]) and all(np.isfinite(report["history"]["pseudo_loss"]))
    if "association_budget" in flags:  # half of 0.5 x the camera-local ids in the first of the 2 rounds, then all
        budgets = [math.ceil(0.5 * r["num_proxies"] * number / 2) for number, r in enumerate(rounds, 1)]
        assert [r["link_budget"] for r in rounds] == budgets
        assert all(r["num_links"] <= r["link_budget"] for r in rounds)
    if "association_confidence" in flags:
        assert all(r["mean_link_confidence"] >= 0 for r in rounds)
