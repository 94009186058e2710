"""ACAN (paper Fig. 2): F trained with the intra-camera triplet loss and multi-camera adversarial learning against D."""

from __future__ import annotations

from acan_tf import losses

import keras
import tensorflow as tf

from acan_tf.config import SCHEMES, WARMUPS
from acan_tf.model.encoder import training_view
from acan_tf.model.grl import gradient_reversal
from acan_tf.model.identity_heads import CameraMemory, PerCameraClassifier

# The train step's log of embedding_spread: this step's value, not a running mean (the collapse guard watches it).
SPREAD_LOG = "embedding_spread"


def adv_weight_factor(step: tf.Tensor, warmup: str, warmup_steps: int, total_steps: int) -> tf.Tensor:
    """The fraction of λ in force at `step`: 1, a linear ramp over `warmup_steps`, or DANN's 2/(1+e^(−10p))−1."""
    step = tf.cast(step, tf.float32)
    if warmup == "none":
        return tf.constant(1.0)
    if warmup == "linear":
        return tf.minimum(1.0, step / float(max(warmup_steps, 1)))
    if warmup == "dann":
        progress = tf.minimum(1.0, step / float(max(total_steps, 1)))
        return 2.0 / (1.0 + tf.exp(-10.0 * progress)) - 1.0
    raise ValueError(f"unknown λ warm-up {warmup!r}; choices: {', '.join(WARMUPS)}")


def embedding_spread(features: tf.Tensor, margin: float) -> tf.Tensor:
    """The RMS distance of the rows of `features` [N, D] to their mean, in triplet margins: 0 when all are alike."""
    # Raw features, not L2-normalised ones: the triplet loss measures raw distances against the margin, and a
    # healthy run may grow the features' norm, which would shrink a normalised spread without any collapse.
    features = tf.cast(features, tf.float32)
    centred = features - tf.reduce_mean(features, axis=0, keepdims=True)
    return tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(centred), axis=1))) / margin


def camera_centred(features: tf.Tensor, camids: tf.Tensor, means: tf.Tensor) -> tf.Tensor:
    """Each row of `features` [N, D] minus its camera's row of `means` [C, D] (camera-aware normalisation)."""
    return features - tf.gather(means, tf.reshape(camids, [-1]))


def per_camera_means(features: tf.Tensor, camids: tf.Tensor, num_cameras: int) -> tf.Tensor:
    """The mean row of `features` [N, D] of each camera, [C, D] (zeros for a camera without rows)."""
    return tf.math.unsorted_segment_mean(features, tf.reshape(camids, [-1]), num_cameras)


class ACAN(keras.Model):
    """F (the encoder) and D (the camera discriminator), trained alternately as in Eq. 13-15.

    A training batch is a dict: `triplet_images`, `triplet_ids` (camera-local ids), `triplet_camids`
    (a P×K batch from one camera) and `camera_images`, `camera_camids` (⌊B/C⌋ images of every
    camera); with the association stage also `pseudo_images`, `pseudo_ids`, `pseudo_camids` (P cross-camera
    pseudo-identities × K). Images are [N, H, W, 3] or tracklets [N, T, H, W, 3] in raw [0, 255] pixels.

    With `camera_centering`, D, L_MCAL and the cross-camera triplet loss see features centred on each camera's mean
    in the camera-balanced batch (the pseudo batch on those means, held constant); the intra-camera triplet loss,
    whose batch is one camera, would not change under that shift and sees the features as they are. A batch with
    `pseudo_weights` (each pseudo item's link confidence) weights the cross-camera triplet loss's anchors by them.

    With a `teacher` (a copy of F, CMT's mean teacher), every step ends with teacher = m teacher + (1 - m) F over all
    of F's weights (`teacher_momentum` m); no loss sees the teacher, the association rounds embed with it.

    With an `identity_head` (the intra-camera recipe), the per-camera identity loss on the triplet batch's camera-local
    ids joins F's objective, weighted by `identity_weight`; a classifier's weights are F's variables (F's optimizer
    trains them, D's never sees them), a memory moves after F's step. With a BN-neck in the encoder, the triplet and
    adversarial losses (and the collapse guard's spread) see the pooled features before it, the identity loss and
    every user of F's embedding (evaluation, association, export) those after it.
    """

    def __init__(
        self,
        encoder: keras.Model,
        discriminator: keras.Model,
        scheme: str = "oce",
        adv_weight: float = 1.0,
        margin: float = 0.3,
        warmup: str = "none",
        warmup_steps: int = 0,
        total_steps: int = 1,
        pseudo_weight: float | None = None,
        camera_centering: bool = False,
        teacher: keras.Model | None = None,
        teacher_momentum: float = 0.0,
        identity_head: PerCameraClassifier | CameraMemory | None = None,
        identity_weight: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; choices: {', '.join(SCHEMES)}")
        adv_weight_factor(0, warmup, warmup_steps, total_steps)  # validates `warmup` early
        self.encoder = encoder
        self.discriminator = discriminator
        self.scheme = scheme
        self.adv_weight = float(adv_weight)
        self.margin = float(margin)
        self.warmup = warmup
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        # The weight of the cross-camera triplet loss; None: no association stage (and no pseudo_loss log).
        self.pseudo_weight = pseudo_weight
        self.camera_centering = camera_centering
        self.teacher = teacher
        self.teacher_momentum = float(teacher_momentum)
        if teacher is not None:
            shapes = [tuple(v.shape) for v in teacher.weights], [tuple(v.shape) for v in encoder.weights]
            if shapes[0] != shapes[1]:
                raise ValueError("teacher: expected a copy of the encoder, with the same weights in the same order")
            teacher.trainable = False  # moved by the average alone, never by a gradient
        self.identity_head = identity_head
        self.identity_weight = float(identity_weight)
        # The pooled features and the embedding in one pass (None without a BN-neck: they are the same).
        self.training_view = training_view(encoder)
        names = ("loss", "triplet_loss", "d_loss", "adv_loss", "d_accuracy", "adv_weight")
        names += () if pseudo_weight is None else ("pseudo_loss",)
        names += () if identity_head is None else ("identity_loss",)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # F and D are built functional models; nothing is left to infer from data

    def compile(self, f_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer, **kwargs):
        """Sets F's and D's optimizers (built now, so that a tf.distribute scope owns their variables)."""
        super().compile(**kwargs)
        self.f_optimizer = f_optimizer
        self.d_optimizer = d_optimizer
        self.f_optimizer.build(self.f_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def f_variables(self) -> list[tf.Variable]:
        """What F's step trains: the encoder's variables and those of a per-camera classifier."""
        head = [] if self.identity_head is None else self.identity_head.trainable_variables
        return self.encoder.trainable_variables + head

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def embed(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        """F(x): [N, H, W, 3] → [N, D]; a tracklet [N, T, H, W, 3] is the mean of its frames' features."""
        return per_item(self.encoder, images, training)

    def features_and_embedding(self, images: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """(the pooled features before the BN-neck, F's embedding); the same tensor twice without a BN-neck."""
        if self.training_view is None:
            embedding = self.embed(images, training)
            return embedding, embedding
        features, embedding = per_item(self.training_view, images, training)
        return features, embedding

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.embed(images, training=training)

    def current_adv_weight(self) -> tf.Tensor:
        """λ at the current step, after the optional warm-up."""
        factor = adv_weight_factor(self.f_optimizer.iterations, self.warmup, self.warmup_steps, self.total_steps)
        return self.adv_weight * factor

    def train_step(self, data: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        triplet_images, camera_images = data["triplet_images"], data["camera_images"]
        camera_camids = data["camera_camids"]
        num_triplet = tf.shape(triplet_images)[0]
        # Per-replica means are summed across replicas by the optimizers: divide by the replica count so
        # that the applied gradient is the global batch's mean (built-in Keras losses do the same).
        replica_scale = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
        adv_weight = self.current_adv_weight()

        pseudo_images = data.get("pseudo_images")
        batches = [triplet_images, camera_images] + ([] if pseudo_images is None else [pseudo_images])
        with tf.GradientTape() as f_tape:
            # One forward pass of F over all batches, split afterwards.
            features, embedding = self.features_and_embedding(tf.concat(batches, axis=0), training=True)
            num_camera = tf.shape(camera_images)[0]
            triplet_features = features[:num_triplet]
            camera_features = features[num_triplet:num_triplet + num_camera]
            pseudo_features = features[num_triplet + num_camera:]
            if self.camera_centering:
                means = per_camera_means(camera_features, camera_camids, self.discriminator.output_shape[-1])
                camera_features = camera_centred(camera_features, camera_camids, means)
                if pseudo_images is not None:
                    pseudo_features = camera_centred(pseudo_features, data["pseudo_camids"], tf.stop_gradient(means))
            triplet_loss = losses.batch_hard_triplet_loss(
                triplet_features, data["triplet_ids"], data["triplet_camids"], self.margin
            )
            identity_loss, f_identity_term = tf.constant(0.0), tf.constant(0.0)
            if self.identity_head is not None:  # the intra-camera recipe: L_ID inside the triplet batch's camera
                identity_features = embedding[:num_triplet]
                identity_loss = losses.per_camera_identity_loss(
                    self.identity_head(identity_features), data["triplet_ids"], data["triplet_camids"],
                    self.identity_head.ids_per_camera,
                )
                f_identity_term = self.identity_weight * identity_loss
            pseudo_loss, f_pseudo_term = tf.constant(0.0), tf.constant(0.0)
            if pseudo_images is not None:  # the association stage: positives across cameras
                pseudo_loss = losses.cross_camera_triplet_loss(pseudo_features, data["pseudo_ids"], self.margin,
                                                               data.get("pseudo_weights"))
                f_pseudo_term = self.pseudo_weight * pseudo_loss
            with f_tape.stop_recording():
                d_loss, d_accuracy = self._discriminator_step(camera_features, camera_camids, replica_scale)
            # F's step sees the D just updated, as in a GAN's alternating updates (Eq. 14, 15).
            adv_loss, f_adv_term = self._adversarial_term(camera_features, camera_camids, adv_weight)
            # Eq. 13, plus the association stage's and the intra-camera recipe's terms.
            loss = triplet_loss + f_adv_term + f_pseudo_term + f_identity_term
            scaled_loss = self.f_optimizer.scale_loss(loss * replica_scale)
        # Without an identity loss after it, the BN-neck's scale gets no gradient: it is left out of the update.
        reached = [(g, v) for g, v in zip(f_tape.gradient(scaled_loss, self.f_variables), self.f_variables)
                   if g is not None]
        self.f_optimizer.apply([g for g, _ in reached], [v for _, v in reached])
        if self.teacher is not None:
            self._update_teacher()
        if self.identity_head is not None:  # a memory moves towards the features its scores were computed from
            self.identity_head.update(tf.stop_gradient(identity_features), data["triplet_ids"], data["triplet_camids"])

        values = {
            "loss": loss,
            "triplet_loss": triplet_loss,
            "d_loss": d_loss,
            "adv_loss": adv_loss,
            "d_accuracy": d_accuracy,
            "adv_weight": adv_weight,
            "pseudo_loss": pseudo_loss,
            "identity_loss": identity_loss,
        }
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        logs = {name: tracker.result() for name, tracker in self.trackers.items()}
        return {**logs, SPREAD_LOG: embedding_spread(triplet_features, self.margin)}

    def _update_teacher(self) -> None:
        """teacher = m teacher + (1 - m) F, every weight (batch-norm statistics too), after F's update."""
        m = self.teacher_momentum
        for teacher, student in zip(self.teacher.weights, self.encoder.weights):
            teacher.assign(m * teacher + (1.0 - m) * student)

    def _discriminator_step(
        self, camera_features: tf.Tensor, camids: tf.Tensor, replica_scale: float
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """min_D L_MCAL-D (Eq. 1) on features detached from F; returns the loss and D's camera accuracy."""
        detached = tf.stop_gradient(camera_features)
        with tf.GradientTape() as d_tape:
            logits = self.discriminator(detached, training=True)
            d_loss = losses.camera_cross_entropy(logits, camids)
            scaled = self.d_optimizer.scale_loss(d_loss * replica_scale)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(scaled, variables), variables)
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(predicted, tf.cast(tf.reshape(camids, [-1]), tf.int32)), tf.float32))
        return d_loss, accuracy

    def _adversarial_term(
        self, camera_features: tf.Tensor, camids: tf.Tensor, adv_weight: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(L_MCAL-F as reported, its contribution to F's objective) for the scheme; only F's gradient is used."""
        if self.scheme == "grl":
            # Eq. 14: D's cross-entropy reaches F through the GRL, reversed and scaled by λ.
            logits = self.discriminator(gradient_reversal(camera_features, adv_weight), training=False)
            adv_loss = losses.camera_cross_entropy(logits, camids)
            return adv_loss, adv_loss
        if self.scheme == "oce":
            adv_loss = losses.oce_loss(self.discriminator(camera_features, training=False), camids)  # Eq. 9-10
            return adv_loss, adv_weight * adv_loss
        if self.scheme == "ace":
            adv_loss = losses.ace_loss(self.discriminator(camera_features, training=False))  # Eq. 4
            return adv_loss, adv_weight * adv_loss
        zero = tf.constant(0.0)
        return zero, zero  # "only L_Triplet": D still trains, so its accuracy measures camera alignment


def per_item(model: keras.Model, images: tf.Tensor, training: bool) -> tf.Tensor | list[tf.Tensor]:
    """`model`'s output(s) per image [N, H, W, 3], or per tracklet [N, T, H, W, 3] as the mean over its frames."""
    if images.shape.rank != 5:
        return model(images, training=training)
    shape = tf.shape(images)
    frames = tf.reshape(images, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))
    outputs = model(frames, training=training)
    # Temporal average pooling, of each output.
    return tf.nest.map_structure(
        lambda features: tf.reduce_mean(tf.reshape(features, [shape[0], shape[1], -1]), axis=1), outputs
    )
