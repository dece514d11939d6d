"""Knowledge distillation: the loss against a numpy transcription, and a student trained by the loop."""

import numpy as np
import pytest
import tensorflow as tf

import _tiny
import training
from training.distill import Distiller, distillation_loss


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_loss_is_hintons_mix_of_cross_entropy_and_softened_kl():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(0, 2, (5, 4)), rng.normal(0, 2, (5, 4))
    labels = rng.integers(0, 4, 5)
    t, alpha = 3.0, 0.25
    p, q = _softmax(teacher / t), _softmax(student / t)
    ce = -np.log(_softmax(student)[np.arange(5), labels])
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=-1)
    expected = np.mean(alpha * ce + (1 - alpha) * t ** 2 * kl)
    got = distillation_loss(labels, tf.constant(student, tf.float32), tf.constant(teacher, tf.float32),
                            temperature=t, alpha=alpha)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    same = distillation_loss(labels, tf.constant(teacher, tf.float32), tf.constant(teacher, tf.float32),
                             temperature=t, alpha=0.0)
    assert abs(float(same)) < 1e-5  # a student equal to its teacher has nothing left to learn


def test_the_loop_trains_a_student_toward_its_frozen_teacher(tmp_path):
    teacher = _tiny.plain_model()
    training.fit(teacher, _tiny.epoch_data, recipe=training.Recipe(optimizer="adam", learning_rate=1e-2, epochs=4,
                                                                  batch_size=_tiny.BATCH), out_dir=tmp_path / "t",
                 verbose=0)
    frozen = [w.copy() for w in teacher.get_weights()]
    student = _tiny.plain_model()
    images, labels = _tiny.arrays()

    def gap():  # mean KL(teacher ‖ student) at T=1 over the data
        p, q = _softmax(teacher.predict(images, verbose=0)), _softmax(student.predict(images, verbose=0))
        return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))

    before = gap()
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.0)
    result = training.fit(distiller, _tiny.epoch_data, val=_tiny.epoch_data(0),
                          recipe=training.Recipe(optimizer="adam", learning_rate=1e-2, epochs=4,
                                                 batch_size=_tiny.BATCH), out_dir=tmp_path / "s", verbose=0)
    assert result.model.student is student
    assert gap() < 0.3 * before  # the student moved toward the teacher's outputs
    for old, new in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)  # the teacher did not train
    assert set(result.history[-1]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.best_val_accuracy is not None
    copy = _tiny.plain_model()
    copy.load_weights(result.final_weights)  # the run's weights files are the student's
    for a, b in zip(copy.get_weights(), student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_distiller_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha must be in \\[0, 1\\]; received 1.5"):
        Distiller(_tiny.plain_model(), _tiny.plain_model(), alpha=1.5)
    with pytest.raises(ValueError, match="temperature must be > 0; received 0"):
        Distiller(_tiny.plain_model(), _tiny.plain_model(), temperature=0)
    import tf_keras as keras

    other = keras.Sequential([keras.Input(_tiny.SHAPE), keras.layers.Flatten(), keras.layers.Dense(7)])
    with pytest.raises(ValueError, match="the teacher predicts 7 classes and the student 4"):
        Distiller(_tiny.plain_model(), other)
