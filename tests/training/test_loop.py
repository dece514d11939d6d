"""The shared loop: training, resuming after SIGKILL, divergence, determinism, distribution, precision."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import training
import zoo
from training.recipes import Recipe, Regularization, Schedule, make_schedule
from training.runs import load_recipe

sys.path.insert(0, os.path.dirname(__file__))
import _tiny  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# One step per execution: the tests' callbacks act at exact steps.
RECIPE = Recipe(optimizer="momentum", learning_rate=0.05, epochs=3, batch_size=_tiny.BATCH, checkpoint_every=4,
                steps_per_execution=1)


def _run_script(body: str, *, env=None, timeout=240):
    script = "import sys; sys.path.insert(0, %r)\n" % HERE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_fit_trains_and_writes_its_files(tmp_path):
    result = training.fit(_tiny.model, _tiny.epoch_data, recipe=RECIPE, val=lambda e: _tiny.epoch_data(0, seed=1),
                          out_dir=tmp_path)
    assert len(result.history) == 3 and result.steps == 3 * 6 and result.resumed_from_step == 0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)
    for name in ("recipe.json", "state.json", "log.csv", "final_weights.h5", "best_weights.h5", "checkpoints"):
        assert (tmp_path / name).exists(), name
    assert Recipe.from_file(tmp_path / "recipe.json") == RECIPE
    assert len((tmp_path / "log.csv").read_text().strip().splitlines()) == 4  # header + 3 epochs
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert checkpoint.endswith("-18")
    # The run's last checkpoint holds its final weights, and loads as weights (the model, not the optimizer).
    final = keras.models.clone_model(_tiny.model())
    final.load_weights(str(tmp_path / "final_weights.h5"))
    restored = zoo.create_model("resnet20", input_shape=_tiny.SHAPE, num_classes=_tiny.CLASSES,
                                stage_depths=(1, 1, 1), weights=checkpoint)
    for a, b in zip(restored.weights, final.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


RESUMABLE_RUN = """
    import os, signal, sys
    import tf_keras as keras
    import _tiny, training
    from training.recipes import Recipe
    recipe = Recipe.from_dict(__RECIPE__)
    kill_at = int(sys.argv[1]) if len(sys.argv) > 1 else -1

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    training.fit(_tiny.random_model, _tiny.epoch_data, recipe=recipe, out_dir=os.environ["OUT"],
                 callbacks=[Kill()], verbose=0)
"""


def test_resume_after_sigkill_mid_epoch_reaches_the_uninterrupted_weights(tmp_path):
    # Three steps per execution, so callbacks see steps 3, 6, 9, ...; a checkpoint every 4 steps lands at the
    # first execution's end at or past each multiple of 4 (9 here; 6 is an epoch's end).
    recipe = RECIPE.replace(deterministic=True, steps_per_execution=3)
    body = RESUMABLE_RUN.replace("__RECIPE__", repr(recipe.to_dict()))
    killed = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {HERE!r})\n"
                             + textwrap.dedent(body), "12"], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "OUT": str(tmp_path / "a")})
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL at step 12, before the epoch-end checkpoint
    assert tf.train.latest_checkpoint(str(tmp_path / "a" / "checkpoints")).endswith("-9")
    assert not (tmp_path / "a" / "final_weights.h5").exists()

    resumed = training.fit(_tiny.random_model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "a", verbose=0)
    assert resumed.resumed_from_step == 9 and resumed.steps == 18
    # Steps per execution changes when callbacks run, not the steps: one step per call ends at the same weights.
    straight = training.fit(_tiny.random_model, _tiny.epoch_data, recipe=recipe.replace(steps_per_execution=1),
                            out_dir=tmp_path / "b", verbose=0)
    for a, b in zip(resumed.model.get_weights(), straight.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # Dropout and stochastic depth did draw: the same run with other random draws ends elsewhere.
    other = training.fit(_tiny.random_model, _tiny.epoch_data, recipe=recipe.replace(seed=1), out_dir=tmp_path / "c",
                         verbose=0)
    assert not all(np.allclose(a, b) for a, b in zip(other.model.get_weights(), straight.model.get_weights()))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # A learning rate of 1e30 blows the weights up within a few steps.
    recipe = RECIPE.replace(checkpoint_every=1, epochs=1, learning_rate=1e30)
    with pytest.raises(training.TrainingDiverged, match=r"loss became (nan|inf) at step (\d+) .* is .*ckpt-") as err:
        training.fit(_tiny.model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path, verbose=0)
    bad_step = int(re.search(r"at step (\d+)", str(err.value)).group(1))
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith(f"-{bad_step - 1}") and latest in str(err.value)
    model = _tiny.model()
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not (tmp_path / "final_weights.h5").exists()


def test_a_nan_inside_an_execution_stops_at_its_end_with_the_checkpoint_before_it(tmp_path):
    # Batch 4 (step 5) holds a NaN image; two steps per execution, so callbacks see steps 2, 4, 6. A linear
    # model carries the NaN to the loss (a ReLU would turn it into 0).
    def linear():
        return keras.Sequential([keras.Input(_tiny.SHAPE), keras.layers.Flatten(), keras.layers.Dense(_tiny.CLASSES)])

    recipe = RECIPE.replace(checkpoint_every=1, epochs=1, steps_per_execution=2)
    with pytest.raises(training.TrainingDiverged, match=r"loss became nan in steps 5-6 \(one execution\)") as err:
        training.fit(linear, lambda epoch: _tiny.epoch_data(epoch, nan_batch=4), recipe=recipe, out_dir=tmp_path,
                     verbose=0)
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("-4") and latest in str(err.value)


def test_deterministic_runs_are_bitwise_identical(tmp_path):
    recipe = RECIPE.replace(deterministic=True, epochs=1, augment=None)
    a = training.fit(_tiny.model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "a", verbose=0)
    b = training.fit(_tiny.model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "b", verbose=0)
    for x, y in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_resuming_with_another_recipe_or_epoch_length_is_refused(tmp_path):
    training.fit(_tiny.model, _tiny.epoch_data, recipe=RECIPE.replace(epochs=1), out_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match=r"different recipe \(changed: learning_rate\)"):
        training.fit(_tiny.model, _tiny.epoch_data, recipe=RECIPE.replace(epochs=1, learning_rate=0.5),
                     out_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match=r"run of 6 steps per epoch; this data has 3"):
        training.fit(_tiny.model, lambda epoch: _tiny.epoch_data(epoch).take(3), recipe=RECIPE.replace(epochs=1),
                     out_dir=tmp_path, verbose=0)
    # Training longer continues the run, and so does another number of steps per execution.
    longer = training.fit(_tiny.model, _tiny.epoch_data, recipe=RECIPE.replace(epochs=2, steps_per_execution=2),
                          out_dir=tmp_path, verbose=0)
    assert longer.resumed_from_step == 6 and longer.steps == 12 and len(longer.history) == 2

    class Stop(keras.callbacks.Callback):  # stops the run in its first epoch, after the checkpoint at step 4
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.fit(_tiny.model, _tiny.epoch_data, recipe=RECIPE.replace(epochs=1), out_dir=tmp_path / "first",
                     callbacks=[Stop()], verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path / "first" / "checkpoints")).endswith("-4")
    with pytest.raises(ValueError, match=r"run of 6 steps per epoch; this data has 3"):
        training.fit(_tiny.model, lambda epoch: _tiny.epoch_data(epoch).take(3), recipe=RECIPE.replace(epochs=1),
                     out_dir=tmp_path / "first", verbose=0)


def test_auxiliary_outputs_are_trained_with_their_weight(tmp_path):
    import zoo

    def googlenet():
        return zoo.create_model("googlenet", input_shape=(16, 16, 1), num_classes=4)

    data = lambda e: _tiny.epoch_data(e).map(lambda x, y: (tf.image.resize(x, (16, 16)), y)).take(2)  # noqa: E731
    result = training.fit(googlenet, data, recipe=RECIPE.replace(epochs=1, aux_loss_weight=0.3),
                          out_dir=tmp_path, verbose=0)
    logs = result.history[0]
    assert {"predictions_loss", "aux1_predictions_loss", "aux2_predictions_loss", "predictions_accuracy"} <= set(logs)
    expected = logs["predictions_loss"] + 0.3 * (logs["aux1_predictions_loss"] + logs["aux2_predictions_loss"])
    assert logs["loss"] == pytest.approx(expected, rel=1e-3)


def test_a_model_with_its_own_train_step_trains(tmp_path):
    class Custom(keras.Model):  # the shape GANs, VAEs and detectors take
        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, self(x, training=True),
                                                                                  from_logits=True))
            self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
            return {"custom_loss": loss}

    def build():
        inner = _tiny.model()
        return Custom(inner.inputs, inner.outputs)

    result = training.fit(build, _tiny.epoch_data, recipe=RECIPE.replace(epochs=2), out_dir=tmp_path, verbose=0)
    assert result.history[1]["custom_loss"] < result.history[0]["custom_loss"]


def test_an_epochs_history_and_best_weights_are_committed_with_its_checkpoint(tmp_path, monkeypatch):
    recipe = RECIPE.replace(epochs=2)
    val = lambda e: _tiny.epoch_data(0, seed=1)  # noqa: E731
    # Stopped right after epoch 1's checkpoint (the CSV logger runs after it): its history is already written.
    csv_epoch_end = keras.callbacks.CSVLogger.on_epoch_end

    def stop(self, epoch, logs=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", stop)
    with pytest.raises(KeyboardInterrupt):
        training.fit(_tiny.plain_model, _tiny.epoch_data, val=val, recipe=recipe, out_dir=tmp_path / "a", verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path / "a" / "checkpoints")).endswith("-6")
    assert (tmp_path / "a" / "best_weights.h5").exists()
    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", csv_epoch_end)
    resumed = training.fit(_tiny.plain_model, _tiny.epoch_data, val=val, recipe=recipe, out_dir=tmp_path / "a", verbose=0)
    assert resumed.resumed_from_step == 6 and len(resumed.history) == 2
    assert resumed.best_val_accuracy == max(h["val_accuracy"] for h in resumed.history)

    # An epoch's end is a two-phase commit around its checkpoint. Stopped before epoch 2's checkpoint
    # (step 12): the pending epoch is dropped and trained again from step 8. Stopped after it: it is kept.
    save = training.loop._Checkpointer._save
    for out, saved in (("b", False), ("c", True)):
        def stop_at_12(self, step):
            if step == 12 and saved:
                save(self, step)
            if step == 12:
                raise KeyboardInterrupt
            save(self, step)

        monkeypatch.setattr(training.loop._Checkpointer, "_save", stop_at_12)
        with pytest.raises(KeyboardInterrupt):
            training.fit(_tiny.plain_model, _tiny.epoch_data, val=val, recipe=recipe, out_dir=tmp_path / out,
                         verbose=0)
        state = json.loads((tmp_path / out / "state.json").read_text())
        assert len(state["history"]) == 1 and state["pending"]["step"] == 12
        monkeypatch.setattr(training.loop._Checkpointer, "_save", save)
        resumed = training.fit(_tiny.plain_model, _tiny.epoch_data, val=val, recipe=recipe, out_dir=tmp_path / out,
                               verbose=0)
        assert resumed.resumed_from_step == (12 if saved else 8) and resumed.steps == 12
        assert len(resumed.history) == 2 and resumed.best_val_accuracy == max(h["val_accuracy"]
                                                                              for h in resumed.history)
        state = json.loads((tmp_path / out / "state.json").read_text())
        assert state["history"] == [dict(h) for h in resumed.history] and "pending" not in state
        assert (tmp_path / out / "best_weights.h5").exists()
        assert not (tmp_path / out / "best_weights.pending.h5").exists()


def test_a_dataset_without_batches_is_refused_before_training(tmp_path):
    empty = _tiny.epoch_data(0).take(0)
    with pytest.raises(ValueError, match=r"the training dataset yields no batches; received a dataset of "
                                         r"cardinality 0"):
        training.fit(_tiny.plain_model, empty, recipe=RECIPE, out_dir=tmp_path, verbose=0)
    assert not (tmp_path / "state.json").exists()
    with pytest.raises(ValueError, match="yields no batches"):
        training.steps_per_epoch(empty, RECIPE)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_one_hot_labels_train_as_the_class_ids_do(tmp_path, smoothing):
    def one_hot(epoch):
        return _tiny.epoch_data(epoch).take(3).map(lambda x, y: (x, tf.one_hot(y, _tiny.CLASSES)))

    recipe = RECIPE.replace(epochs=2, regularization={"label_smoothing": smoothing})
    runs = {}
    for name, data in (("ids", lambda e: _tiny.epoch_data(e).take(3)), ("one_hot", one_hot)):
        keras.utils.set_random_seed(0)
        runs[name] = training.fit(_tiny.plain_model(), data, recipe=recipe, out_dir=tmp_path / name, verbose=0)
    for ids, rows in zip(runs["ids"].history, runs["one_hot"].history):
        assert ids["accuracy"] == rows["accuracy"]
        np.testing.assert_allclose(ids["loss"], rows["loss"], rtol=1e-5)
    np.testing.assert_allclose(runs["ids"].model.get_weights()[0], runs["one_hot"].model.get_weights()[0], atol=1e-6)


def test_labels_and_images_that_cannot_train_are_refused_saying_what_was_received(tmp_path):
    data = _tiny.epoch_data(0)
    wide = data.map(lambda x, y: (x, tf.one_hot(y, 7)))
    with pytest.raises(ValueError, match=r"the training data has labels of shape \(None, 7\) for a 4-class model; "
                                         r"accepted: class ids of shape \[batch\] or \[batch, 1\], or one-hot "
                                         r"rows \[batch, 4\]"):
        training.fit(_tiny.plain_model(), wide, recipe=RECIPE, out_dir=tmp_path / "wide", verbose=0)
    with pytest.raises(ValueError, match=r"the training data looks unbatched: images of shape \(8, 8, 1\) for a "
                                         r"model input of shape \(None, 8, 8, 1\). Call dataset.batch"):
        training.fit(_tiny.plain_model(), tf.data.Dataset.from_tensor_slices(_tiny.arrays()), recipe=RECIPE,
                     out_dir=tmp_path / "single", verbose=0)
    with pytest.raises(ValueError, match="the validation data has labels of shape"):
        training.fit(_tiny.plain_model(), data, val=wide, recipe=RECIPE, out_dir=tmp_path / "val", verbose=0)
    # Batches without the channel axis train, as Keras takes them ("unbatched" before); single ones do not.
    flat = data.map(lambda x, y: (x[..., 0], y))
    assert training.fit(_tiny.plain_model(), flat, recipe=RECIPE.replace(epochs=1), out_dir=tmp_path / "flat",
                        verbose=0).steps == 6
    with pytest.raises(ValueError, match=r"the training data looks unbatched: images of shape \(8, 8\)"):
        training.fit(_tiny.plain_model(), flat.unbatch().apply(tf.data.experimental.assert_cardinality(96)),
                     recipe=RECIPE, out_dir=tmp_path / "flat1", verbose=0)
    rows = data.map(lambda x, y: (x, tf.one_hot(y, 4)))
    with pytest.raises(ValueError, match=r"^the training data has class ids for labels and the validation data "
                                         r"one-hot rows; accepted: the same kind in both$"):
        training.fit(_tiny.plain_model(), data, val=rows, recipe=RECIPE, out_dir=tmp_path / "mixed", verbose=0)
    raw = tf.data.Dataset.from_tensor_slices((np.zeros((32, 8, 8, 1), "uint8"), np.zeros(32, "int32"))).batch(16)
    with pytest.raises(ValueError, match=r"the training data has uint8 images \(raw pixels\?\) and model 'plain' "
                                         r"scales nothing \(no Rescaling, Normalization or Lambda layer\)"):
        training.fit(_tiny.plain_model(), raw, recipe=RECIPE, out_dir=tmp_path / "raw", verbose=0)
    seven = data.map(lambda x, y: (x, tf.where(y == 2, 7, y)))  # an InvalidArgumentError's graph dump before
    with pytest.raises(ValueError, match=r"^label 7 is outside \[0, 4\) for a 4-class model, in epoch 1's training "
                                         r"or validation data; the last checkpoint is none\. Accepted: class ids 0 "
                                         r"to num_classes - 1$"):
        training.fit(_tiny.plain_model(), seven, recipe=RECIPE, out_dir=tmp_path / "seven", verbose=0)
    smoothed = RECIPE.replace(regularization={"label_smoothing": 0.1})  # one-hot targets: trained on silently
    with pytest.raises(ValueError, match=r"^label 7 is outside \[0, 4\) for a 4-class model"):
        training.fit(_tiny.plain_model(), seven, recipe=smoothed, out_dir=tmp_path / "smoothed", verbose=0)
    negative = data.map(lambda x, y: (x, tf.where(y == 2, -1, y)))
    with pytest.raises(ValueError, match=r"^label -1 is outside \[0, 4\)"):
        training.fit(_tiny.plain_model(), negative, recipe=smoothed, out_dir=tmp_path / "negative", verbose=0)
    # It was ignored, and recorded in recipe.json as if applied.
    with pytest.raises(ValueError, match=r"recipe.augment='flip' augments a dataset name, which fit loads; a "
                                         r"tf.data.Dataset is read as it is"):
        training.fit(_tiny.plain_model(), data, recipe=RECIPE.replace(augment="flip"), out_dir=tmp_path / "aug",
                     verbose=0)
    assert not (tmp_path / "aug").exists()
    with pytest.raises(ValueError, match=r"a function epoch -> dataset is read as it is"):
        training.fit(_tiny.plain_model(), lambda e: data, recipe=RECIPE.replace(augment="flip"),
                     out_dir=tmp_path / "aug", verbose=0)
    flipped = training.augmented_by(lambda e: data, "flip")  # a function that says it flips: taken
    assert training.fit(_tiny.plain_model(), flipped, recipe=RECIPE.replace(epochs=1, augment="flip"),
                        out_dir=tmp_path / "flipped", verbose=0).steps == 6


def test_each_fit_penalizes_by_its_own_recipe_and_leaves_no_penalty_on_the_model(tmp_path):
    model = _tiny.plain_model()
    data = lambda e: _tiny.epoch_data(e).take(2)  # noqa: E731
    seen = []  # (the penalty in the model's losses, the kernels' sum of squares) as each run begins
    record = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: seen.append((
        sum(float(loss) for loss in model.losses),
        sum(float(np.square(layer.kernel.numpy()).sum()) for layer in model.layers if hasattr(layer, "kernel")))))
    # The penalty stayed on the model: the l2=0 run was penalized by the first one's, the third refused.
    for i, l2 in enumerate((0.01, 0.0, 0.001)):
        result = training.fit(model, data, val=data(0), recipe=RECIPE.replace(epochs=1, regularization={"l2": l2}),
                              out_dir=tmp_path / str(i), callbacks=[record], verbose=0)
        assert result.model is model and model.losses == []
        assert all(getattr(layer, "kernel_regularizer", None) is None for layer in model.layers)
        penalty, squares = seen[-1]
        np.testing.assert_allclose(penalty, l2 * squares, rtol=1e-5)
    # Keras' own evaluate, with the loop's compiled loss: no penalty left in the step it traced for validation
    keras_loss = model.evaluate(data(0), verbose=0)[0]
    np.testing.assert_allclose(keras_loss, training.evaluate(model, data(0)).loss, rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step(tmp_path, policy):
    data = lambda e: _tiny.epoch_data(e).take(2)  # noqa: E731
    result = training.fit(_tiny.model, data, recipe=RECIPE.replace(epochs=1, mixed_precision=policy),
                          out_dir=tmp_path, verbose=0)
    model = result.model
    assert model.get_layer("stage1_block1_1_conv").compute_dtype == policy.split("_")[1]
    assert model.outputs[0].dtype == tf.float32 and np.isfinite(result.history[0]["loss"])
    assert keras.mixed_precision.global_policy().name == "float32"  # the loop restores the policy


def test_schedules():
    recipe = Recipe(learning_rate=1.0, epochs=4, schedule=Schedule(kind="step", milestones=(2, 3), gamma=0.1))
    lr = make_schedule(recipe, steps_per_epoch=10)
    assert [round(float(lr(s)), 6) for s in (0, 19, 20, 29, 30)] == [1.0, 1.0, 0.1, 0.1, 0.01]
    cosine = make_schedule(recipe.replace(schedule=Schedule(kind="cosine", warmup_epochs=1)), steps_per_epoch=10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(9)) == pytest.approx(1.0)
    assert float(cosine(40)) == pytest.approx(0.0, abs=1e-6)
    assert make_schedule(Recipe(learning_rate=0.3), steps_per_epoch=5) == 0.3
    with pytest.raises(ValueError, match="unknown schedule kind 'linear'. Accepted: constant, step, cosine"):
        Schedule(kind="linear")


def test_recipe_files_round_trip_and_reject_unknown_fields(tmp_path):
    recipe = Recipe(optimizer="adam", learning_rate=1e-3, regularization=Regularization(l2=5e-4),
                    schedule=Schedule(kind="cosine", warmup_epochs=0.5), augment="crop_flip")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe.to_dict()))
    assert Recipe.from_file(path) == recipe
    with pytest.raises(ValueError, match="unknown recipe field"):
        Recipe.from_dict({"optimiser": "adam"})
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        Recipe(mixed_precision="fp16")
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamz'.*Close matches: adam"):
        Recipe(optimizer="adamz")  # it failed only in fit, after the run's recipe.json was written
    with pytest.raises(ValueError, match=r"unknown augmentation 'flipp'"):
        Recipe(augment="flipp")
    (tmp_path / "typo.json").write_text(json.dumps({"optimizer": "adamm"}))
    with pytest.raises(ValueError, match=r"^recipe file '.*typo\.json': unknown optimizer 'adamm'\. Accepted: sgd, "):
        Recipe.from_file(tmp_path / "typo.json")
    assert load_recipe(tmp_path / "typo.json", optimizer="adam").optimizer == "adam"  # a flag mends it
    with pytest.raises(ValueError, match=r"must be integers >= 1; received epochs=2.5, steps_per_execution=0"):
        Recipe(epochs=2.5, steps_per_execution=0)
    with pytest.raises(ValueError, match=r"received epochs=True"):
        Recipe(epochs=True)  # bool is an int subclass; a count must not accept it
    with pytest.raises(ValueError, match=r"learning_rate must be a number > 0; received True"):
        Recipe(learning_rate=True)
    with pytest.raises(ValueError, match=r"regularization l2 must be a number >= 0.*received False"):
        Regularization(l2=False)
    with pytest.raises(ValueError, match=r"warmup_epochs must be a number >= 0; received '1'"):
        Schedule(warmup_epochs="1")
    with pytest.raises(ValueError, match=r"gamma must be a number > 0; received 0"):
        Schedule(kind="step", gamma=0)
    with pytest.raises(ValueError, match=r"min_learning_rate must be a number >= 0; received '0'"):
        Schedule(min_learning_rate="0")
    for milestones in ("23", 3, (0, 2), (2.5,)):  # a string would otherwise read as the epochs 2 and 3
        with pytest.raises(ValueError, match=r"milestones must be a sequence of epochs, integers >= 1; received"):
            Schedule(kind="step", milestones=milestones)
    with pytest.raises(ValueError, match=r"min_learning_rate \(0.1\) is above learning_rate \(0.01\)"):
        Recipe(learning_rate=0.01, schedule={"kind": "cosine", "min_learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"unknown schedule field\(s\) warmup. Accepted: gamma, kind, milestones"):
        Recipe.from_dict({"schedule": {"kind": "cosine", "warmup": 1}})
    with pytest.raises(ValueError, match=r"schedule must be a Schedule or a dict of its fields; received 'cosine'"):
        Recipe(schedule="cosine")
    with pytest.raises(ValueError, match=r"optimizer must be an optimizer's name \(a str.*received None"):
        Recipe(optimizer=None)
    with pytest.raises(ValueError, match=r"augment must be None or an augmentation's name.*received 3"):
        Recipe(augment=3)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0; received -1"):
        Recipe(seed=-1)
    with pytest.raises(ValueError, match=r"aux_loss_weight must be a number >= 0; received None"):
        Recipe(aux_loss_weight=None)
    with pytest.raises(ValueError, match=r"deterministic must be True or False; received 'no'"):
        Recipe(deterministic="no")  # a non-empty string would otherwise switch determinism on
    # numpy's numbers are accepted and stored as Python's, so the recipe still writes to JSON.
    np_recipe = Recipe(epochs=np.int64(3), learning_rate=np.float32(0.5), regularization={"l2": np.float32(0.25)},
                       seed=np.int32(7), schedule=Schedule(kind="step", milestones=np.array([2]), gamma=np.float32(0.5)))
    assert type(np_recipe.epochs) is int and type(np_recipe.learning_rate) is float
    assert np_recipe.schedule.milestones == (2,) and type(np_recipe.schedule.gamma) is float
    assert Recipe.from_dict(json.loads(json.dumps(np_recipe.to_dict()))) == np_recipe
    # A recipe written before steps_per_execution existed reads with the default.
    old = {k: v for k, v in recipe.to_dict().items() if k != "steps_per_execution"}
    assert Recipe.from_dict(old).steps_per_execution == Recipe().steps_per_execution


def test_recipe_optimizer_options_are_keyword_arguments_written_to_json(tmp_path):
    recipe = Recipe(optimizer="rmsprop", optimizer_options={"rho": np.float32(0.5), "centered": np.bool_(True)})
    assert recipe.optimizer_options == {"rho": 0.5, "centered": True}
    assert type(recipe.optimizer_options["rho"]) is float and type(recipe.optimizer_options["centered"]) is bool
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    betas = Recipe(optimizer="adam", optimizer_options={"betas": (0.9, 0.99)})  # a tuple reads back as a list
    assert Recipe.from_dict(json.loads(json.dumps(betas.to_dict()))) == betas
    for options in (None, [("rho", 0.9)], {1: 0.9}):
        with pytest.raises(ValueError, match=r"optimizer_options must be a dict of keyword arguments \(str keys\); "
                                             r"received"):
            Recipe(optimizer_options=options)
    for value in (np.array([0.9, 0.99]), object(), float("nan")):
        with pytest.raises(ValueError, match=r"optimizer_options\['rho'\] must be JSON data .* received"):
            Recipe(optimizer_options={"rho": value})


MIRRORED = """
    import json, sys
    import zoo, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import _tiny, training
    from training.recipes import Recipe
    recipe = Recipe.from_dict(__RECIPE__)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if sys.argv[1] == "mirrored" else None
    result = training.fit(_tiny.plain_model, _tiny.epoch_data, recipe=recipe, out_dir=sys.argv[2],
                          strategy=strategy, verbose=0)
    print(json.dumps([h["loss"] for h in result.history]))
"""


def test_mirrored_strategy_over_two_logical_cpus_matches_one_device(tmp_path):
    recipe = RECIPE.replace(epochs=2, learning_rate=0.2)
    body = MIRRORED.replace("__RECIPE__", repr(recipe.to_dict()))
    losses = {}
    for mode in ("single", "mirrored"):
        run = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {HERE!r})\n"
                              + textwrap.dedent(body), mode, str(tmp_path / mode)], capture_output=True, text=True,
                             timeout=240)
        assert run.returncode == 0, run.stderr[-3000:]
        losses[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    # Without batch norm (whose statistics are per replica) the replicas' summed gradients are the
    # single device's gradient: the curves agree up to the order of floating-point sums.
    np.testing.assert_allclose(losses["mirrored"], losses["single"], rtol=1e-4)


def test_fit_by_dataset_name_loads_augments_and_validates(tmp_path, monkeypatch):
    import zoo

    def model():
        return zoo.create_model("resnet20", input_shape=(8, 8, 1), num_classes=10, stage_depths=(1, 1, 1))

    import training.data

    calls = []
    load = training.data.load_dataset

    def spy(name, split, **kwargs):
        calls.append((split, kwargs["augment"], kwargs["epoch"]))
        return load(name, split, **kwargs)

    monkeypatch.setattr(training.data, "load_dataset", spy)
    recipe = RECIPE.replace(epochs=2, batch_size=64, augment="flip", learning_rate=0.1)
    result = training.fit(model, "digits", recipe=recipe, val="digits", out_dir=tmp_path, verbose=0)
    assert result.steps == 2 * 23  # 1437 training digits in batches of 64
    assert ("test", None, 0) in calls and ("train", "flip", 1) in calls  # augment the training split only
    assert result.history[-1]["val_accuracy"] > 0.5  # chance is 0.1


def test_a_dataset_name_is_loaded_at_the_models_image_size(tmp_path):
    import zoo

    model = zoo.create_model("resnet20", input_shape=(12, 12, 1), num_classes=10, stage_depths=(1, 1, 1))
    recipe = RECIPE.replace(epochs=1, batch_size=256, augment="flip")
    assert training.first_batch("digits", recipe)[0].shape[1:] == (8, 8, 1)  # the digits as they are
    images, _ = training.first_batch("digits", recipe, model=model)
    assert images.shape[1:] == (12, 12, 1)
    first = next(iter(training.epoch_data("digits", recipe, model=model)(0)))[0]
    assert np.array_equal(first.numpy(), images.numpy())  # the batch fit reads first
    result = training.fit(model, "digits", recipe=recipe, val="digits", out_dir=tmp_path, verbose=0)
    assert result.steps == 6 and np.isfinite(result.history[0]["val_loss"])  # it was 8x8 into a 12x12 input
    rgb = zoo.create_model("resnet20", input_shape=(12, 12, 3), num_classes=10, stage_depths=(1, 1, 1))
    with pytest.raises(ValueError, match=r"takes images of shape \(12, 12, 3\); the training data has images of "
                                         r"shape \(12, 12, 1\)\. Accepted: .*not its channels"):
        training.fit(rgb, "digits", recipe=recipe, out_dir=tmp_path / "rgb")  # it failed in the first step's trace
    assert not os.listdir(tmp_path / "rgb")  # nothing written for a run that cannot start


MULTI_WORKER = """
    import json, os, sys
    import zoo, tensorflow as tf
    import _tiny, training
    from training.recipes import Recipe
    recipe = Recipe.from_dict(__RECIPE__)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    result = training.fit(_tiny.plain_model, _tiny.epoch_data, recipe=recipe, out_dir=sys.argv[1],
                          strategy=strategy, verbose=0)
    print(json.dumps([h["loss"] for h in result.history]))
"""


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_across_two_local_processes_matches_one_device(tmp_path):
    recipe = RECIPE.replace(epochs=2, learning_rate=0.2)
    body = MULTI_WORKER.replace("__RECIPE__", repr(recipe.to_dict()))
    script = f"import sys; sys.path.insert(0, {HERE!r})\n" + textwrap.dedent(body)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run")], text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env={**os.environ, "TF_CONFIG": tf_config}))
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    chief_losses = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert (tmp_path / "run" / "final_weights.h5").exists() and (tmp_path / "run" / "worker-1").is_dir()

    single = training.fit(_tiny.plain_model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "single",
                          verbose=0)
    np.testing.assert_allclose(chief_losses, [h["loss"] for h in single.history], rtol=1e-3)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_a_model_ending_in_a_softmax_layer_is_trained_on_its_probabilities(tmp_path, label_smoothing):
    # The loop read only a layer's `activation`: a Softmax layer has none, so its outputs were taken for logits
    # and softmaxed again; with label smoothing every model's were.
    def build():
        inner = _tiny.model()
        return keras.Model(inner.inputs, keras.layers.Softmax()(inner.outputs[0]))

    recipe = RECIPE.replace(epochs=1, regularization=Regularization(label_smoothing=label_smoothing))
    model = build()
    training.fit(model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path, verbose=0)
    assert model.loss.get_config()["from_logits"] is False


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.conv = keras.layers.Conv2D(4, 3, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(_tiny.CLASSES)

    def call(self, x):
        return self.head(self.pool(self.conv(x)))


def test_a_subclassed_model_trains_and_resumes(tmp_path):
    # "TypeError: 'NoneType' object is not subscriptable": the loop read its output layer, which it has none of.
    recipe = RECIPE.replace(regularization=Regularization(l2=1e-4))  # the penalty needs its kernels built
    first = training.fit(_Subclassed, _tiny.epoch_data, recipe=recipe.replace(epochs=1), out_dir=tmp_path, verbose=0)
    assert first.steps == 6
    more = training.fit(_Subclassed, _tiny.epoch_data, recipe=recipe.replace(epochs=2), out_dir=tmp_path, verbose=0)
    assert more.resumed_from_step == 6 and more.steps == 12 and len(more.history) == 2


def test_numpy_arrays_are_batched_shuffled_and_augmented_by_the_recipe(tmp_path):
    images, labels = _tiny.arrays()
    recipe = RECIPE.replace(epochs=2, batch_size=32, augment="flip", seed=5)
    keras.utils.set_random_seed(0)
    by_arrays = training.fit(_tiny.plain_model(), (images, labels), recipe=recipe, val=(images[:40], labels[:40]),
                             out_dir=tmp_path / "arrays", verbose=0)
    assert by_arrays.steps == 2 * 3  # 96 examples in batches of 32: the recipe's batch size

    # The same as the function fit would read them through: the recipe's seed, each epoch's order and flips.
    def epochs(epoch):
        return training.from_arrays(images, labels, batch_size=32, augment="flip", shuffle=True, seed=5, epoch=epoch)

    keras.utils.set_random_seed(0)
    by_hand = training.fit(_tiny.plain_model(), training.augmented_by(epochs, "flip"), recipe=recipe,
                           out_dir=tmp_path / "by_hand", verbose=0)
    for a, b in zip(by_arrays.model.get_weights(), by_hand.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Validation arrays are read as they are, unshuffled and unaugmented: the last epoch's val_accuracy is the
    # final model's accuracy on them.
    final = training.evaluate(by_arrays.model, (images[:40], labels[:40]))
    assert by_arrays.history[-1]["val_accuracy"] == pytest.approx(final.accuracy)

    with pytest.raises(ValueError, match="same, non-zero length; received 96 images and 95 labels"):
        training.fit(_tiny.plain_model(), (images, labels[:95]), recipe=recipe, out_dir=tmp_path / "bad", verbose=0)
    with pytest.raises(TypeError, match=r"a tuple \(images, labels\) of arrays; received a tuple of 3 items"):
        training.fit(_tiny.plain_model(), (images, labels, labels), recipe=recipe, out_dir=tmp_path / "bad", verbose=0)
    with pytest.raises(ValueError, match=r"class ids; received non-integer values such as \d\.5"):  # a list works too
        training.fit(_tiny.plain_model(), [images, labels + 0.5], recipe=recipe, out_dir=tmp_path / "bad", verbose=0)
    with pytest.raises(ValueError, match=r"the validation data has float images with values up to [\d.]+ \(raw pixels"):
        training.fit(_tiny.model(), (images, labels), val=(images * 100, labels), recipe=recipe,
                     out_dir=tmp_path / "bad", verbose=0)  # a zoo model: it takes normalized images
    with pytest.raises(ValueError, match=r"label 7 is outside \[0, 4\) for a 4-class model, in the validation data"):
        training.fit(_tiny.plain_model(), (images, labels), val=(images, np.full(96, 7)), recipe=recipe,
                     out_dir=tmp_path / "bad", verbose=0)  # found before training, not after the first epoch
    assert not (tmp_path / "bad" / "log.csv").exists()
    strings = tf.data.Dataset.from_tensor_slices((images, labels.astype(str))).batch(16)
    with pytest.raises(ValueError, match="the training data has labels of dtype string; accepted: integer class ids"):
        training.fit(_tiny.plain_model(), strings, recipe=RECIPE, out_dir=tmp_path / "bad", verbose=0)
