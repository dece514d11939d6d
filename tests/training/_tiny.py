"""A tiny model and deterministic data for loop tests (also run as a script by subprocess tests)."""

import zoo  # noqa: F401

import numpy as np
import tensorflow as tf

NUM_EXAMPLES, BATCH, CLASSES, SHAPE = 96, 16, 4, (8, 8, 1)


def arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, NUM_EXAMPLES).astype("int32")
    images = rng.normal(0, 1, (NUM_EXAMPLES, *SHAPE)).astype("float32")
    images[np.arange(NUM_EXAMPLES), labels * 2, labels * 2, 0] += 3.0  # learnable: a bright pixel per class
    return images, labels


def epoch_data(epoch: int, seed: int = 0, nan_batch: int | None = None) -> tf.data.Dataset:
    """Epoch ``epoch``'s batches: a pure function of (seed, epoch), as the loop requires for resuming."""
    images, labels = arrays(seed)
    order = np.random.default_rng([seed, epoch]).permutation(NUM_EXAMPLES)
    images, labels = images[order], labels[order]
    if nan_batch is not None:
        images[nan_batch * BATCH] = np.nan
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH)


def model():
    return zoo.create_model("resnet20", input_shape=SHAPE, num_classes=CLASSES, stage_depths=(1, 1, 1))


def random_model():
    """With dropout and stochastic depth: random draws that a resumed run must repeat exactly."""
    return zoo.create_model("resnet20", input_shape=SHAPE, num_classes=CLASSES, stage_depths=(1, 1, 1),
                            dropout=0.3, min_survival_probability=0.5)


def plain_model():
    """No batch norm: replicas of a MirroredStrategy then compute exactly the single device's step."""
    import tf_keras as keras

    inputs = keras.Input(SHAPE, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(CLASSES, name="predictions")(x)
    return keras.Model(inputs, outputs, name="plain")
