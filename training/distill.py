"""Knowledge distillation (Hinton et al. 2015): a student learns the teacher's softened outputs.

`Distiller` wraps a student and a frozen teacher in a model whose ``train_step`` minimizes

    alpha * CE(labels, student) + (1 - alpha) * T² * KL(softmax(teacher / T) ‖ softmax(student / T))

so it trains with the shared loop like any other model (checkpoints, resume, callbacks); the
trained student is ``distiller.student``. Compression uses it to recover a pruned or quantized
model from its own float original (``export.pipeline.Plan(distill=True)``).

    >>> distiller = Distiller(student, teacher, temperature=4.0, alpha=0.1)  # doctest: +SKIP
    >>> training.fit(distiller, "fashion_mnist", recipe=recipe, out_dir="runs/kd")  # doctest: +SKIP
    >>> small = distiller.student  # doctest: +SKIP
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

__all__ = ["Distiller", "distillation_loss"]


def distillation_loss(labels, student_logits, teacher_logits, *, temperature: float, alpha: float) -> tf.Tensor:
    """The mean over the batch of ``alpha * CE(labels) + (1 - alpha) * T² * KL(teacher_T ‖ student_T)``.

    Both logits are pre-softmax; ``T²`` keeps the soft term's gradients on the hard term's scale. It
    is computed in float32, whatever the logits' dtypes (a mixed-precision student, a float32 teacher).
    """
    student_logits, teacher_logits = tf.cast(student_logits, tf.float32), tf.cast(teacher_logits, tf.float32)
    hard = keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
    soft_teacher = tf.nn.softmax(teacher_logits / temperature)
    log_student = tf.nn.log_softmax(student_logits / temperature)
    # KL(p ‖ q) = Σ p log p - Σ p log q; the teacher's entropy term carries no gradient but keeps the
    # loss at 0 when the student matches it.
    kl = tf.reduce_sum(soft_teacher * (tf.math.log(soft_teacher + 1e-12) - log_student), axis=-1)
    return tf.reduce_mean(alpha * hard + (1.0 - alpha) * temperature ** 2 * kl)


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


class Distiller(keras.Model):
    """A student trained on a frozen teacher's soft targets and the labels.

    Args:
        student: the model to train (functional, TFMOT-wrapped models included); logits out.
        teacher: a model with the same input and classes, logits out; its weights are not trained
            (``teacher.trainable`` is set to False) and it runs in inference mode.
        temperature: softening of both distributions (Hinton et al.: 2-20; higher spreads the
            teacher's "dark knowledge" over more classes).
        alpha: weight of the cross-entropy on the labels; ``1 - alpha`` goes to the soft targets.

    Calling the distiller runs the student; evaluation reports the student's loss and accuracy
    on the labels; ``save_weights`` writes the student's (the loop's best and final weights). Only the first output of multi-output models is distilled.

    Raises:
        ValueError: a bad temperature or alpha, or a teacher whose classes differ from the student's.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, *, temperature: float = 4.0, alpha: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; received {temperature!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; received {alpha!r}")
        student_classes = _first(student.outputs).shape[-1] if student.outputs else None
        teacher_classes = _first(teacher.outputs).shape[-1] if teacher.outputs else None
        if student_classes is not None and teacher_classes is not None and student_classes != teacher_classes:
            raise ValueError(f"the teacher predicts {teacher_classes} classes and the student {student_classes}; "
                             "distillation needs the same classes")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def penalized_model(self) -> keras.Model:
        """The student: `training.fit` puts a recipe's L1/L2 penalty on its kernels (the teacher is frozen),
        and ``train_step`` adds ``student.losses`` to the loss."""
        return self.student

    def save_weights(self, filepath, *args, **kwargs):
        """Saves the student's weights: the weights files of a distillation run are the student's."""
        return self.student.save_weights(filepath, *args, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        return self.student.load_weights(filepath, *args, **kwargs)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]

    def call(self, inputs, training=None):
        return _first(self.student(inputs, training=training))

    def train_step(self, data):
        images, labels = data[:2]
        teacher_logits = _first(self.teacher(images, training=False))
        with tf.GradientTape() as tape:
            logits = _first(self.student(images, training=True))
            loss = distillation_loss(labels, logits, teacher_logits, temperature=self.temperature, alpha=self.alpha)
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images, labels = data[:2]
        logits = _first(self.student(images, training=False))
        self.loss_tracker.update_state(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        self.accuracy.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}
