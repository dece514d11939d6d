"""Knowledge distillation: the loss against a numpy transcription, and a student trained by the loop."""

import numpy as np
import pytest
import tensorflow as tf

import _tiny
import training
from training.distill import Distiller, distillation_loss
from zoo import _weights


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
    # So are the weights zoo reads from its checkpoints (the teacher's layers have the same names).
    saved = _weights._read_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "s" / "checkpoints")), "the run's")
    assert {layer: [name for name, _ in arrays] for layer, arrays in saved.items()} == {
        "conv": ["conv/kernel", "conv/bias"], "predictions": ["predictions/kernel", "predictions/bias"]}
    for (_, a), b in zip(saved["conv"] + saved["predictions"], student.get_weights(), strict=True):
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


def test_a_recipes_l2_penalizes_the_students_kernels_in_its_loss(tmp_path):
    teacher = _tiny.plain_model()
    frozen = [w.copy() for w in teacher.get_weights()]
    first = _tiny.plain_model()
    recipe = training.Recipe(optimizer="sgd", learning_rate=0.1, epochs=1, batch_size=_tiny.BATCH,
                             steps_per_execution=1)

    def kernel_norm(l2):
        student = _tiny.plain_model()
        student.set_weights(first.get_weights())  # the same start for both runs
        result = training.fit(Distiller(student, teacher), _tiny.epoch_data,
                              recipe=recipe.replace(regularization={"l2": l2}), out_dir=tmp_path / str(l2), verbose=0)
        assert result.model.student is student
        return sum(float(np.square(layer.kernel.numpy()).sum()) for layer in student.layers if hasattr(layer, "kernel"))

    plain = kernel_norm(0.0)
    penalized = kernel_norm(1.0)  # 6 SGD steps of decay 1 - 2 * l2 * lr = 0.8 on every kernel
    assert penalized < 0.5 * plain
    assert teacher.losses == []  # the frozen teacher is not penalized
    for old, new in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_mixed_precision_with_a_distiller_built_by_a_function(tmp_path):
    teacher = _tiny.plain_model()
    recipe = training.Recipe(epochs=1, batch_size=_tiny.BATCH, steps_per_execution=1, mixed_precision="mixed_bfloat16")
    data = lambda e: _tiny.epoch_data(e).take(2)  # noqa: E731
    result = training.fit(lambda: Distiller(_tiny.plain_model(), teacher), data, recipe=recipe,
                          out_dir=tmp_path / "fn", verbose=0)
    assert result.model.student.get_layer("conv").compute_dtype == "bfloat16"
    assert np.isfinite(result.history[0]["loss"])
    built = Distiller(_tiny.plain_model(), teacher)  # float32, and a subclassed model cannot be cloned
    with pytest.raises(ValueError, match=r"returned a Distiller \(subclassed\) computing in float32; the "
                                         r"mixed-precision policy 'mixed_bfloat16' can only be applied"):
        training.fit(lambda: built, data, recipe=recipe, out_dir=tmp_path / "built", verbose=0)
