"""A tiny functional CNN and raw-pixel data for the export tests (fast to build, train and convert)."""

import zoo  # noqa: F401

import numpy as np
import tensorflow as tf

SHAPE, CLASSES = (12, 12, 1), 4
MEAN, STD = (0.5,), (0.25,)


def pixels(n: int = 128, seed: int = 0):
    """Raw [0, 255] images whose class is where a bright square sits, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    images = rng.uniform(0, 120, (n, *SHAPE)).astype(np.float32)
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 2)
        images[i, r * 6:r * 6 + 6, col * 6:col * 6 + 6, 0] += 120
    return np.round(images), labels.astype(np.int32)


def normalized(images):
    return (images / 255.0 - np.float32(MEAN[0])) / np.float32(STD[0])


def train_data(epoch: int, steps: int = 6, batch: int = 16) -> tf.data.Dataset:
    images, labels = pixels(steps * batch, seed=100 + epoch)
    return tf.data.Dataset.from_tensor_slices((normalized(images), labels)).batch(batch)


def model(**options):
    """resnet20 with one block per stage (conv, BN, add, zero-padding shortcuts) at 12x12x1."""
    return zoo.create_model("resnet20", input_shape=SHAPE, num_classes=CLASSES, stage_depths=(1, 1, 1), **options)


def trained_model(epochs: int = 3):
    import tf_keras as keras

    m = model()
    m.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for epoch in range(epochs):
        m.fit(train_data(epoch), verbose=0)
    return m


def tiny_model(seed: int = 0):
    """Two convolutions and two Dense layers at 12x12x1 (the edges: conv1, predictions): seconds to fine-tune."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="predictions")(x), name="tiny")
