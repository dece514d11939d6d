"""Plans end to end (transform, fine-tune, convert, verify, measure) and the `zoo export` command."""

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import _data
from export import pipeline, tflite


@pytest.fixture(scope="module")
def data():
    images, labels = _data.pixels(128, seed=7)
    return pipeline.ExportData(train=lambda epoch: _data.train_data(epoch, steps=3), representative=images[:32],
                               test_images=images, test_labels=labels, mean=_data.MEAN, std=_data.STD)


@pytest.fixture(scope="module")
def trained():
    return _data.trained_model()


def test_a_combined_plan_is_compressed_converted_verified_and_measured(trained, data, tmp_path):
    plan = pipeline.Plan("deep", prune=0.5, cluster=8, quantize="qat", distill=True, schedule="cosine")
    result = pipeline.export_variant(trained, plan, data=data, out_dir=tmp_path, max_accuracy_drop=5.0,
                                     latency_runs=3)
    flat = (tmp_path / "deep.tflite").read_bytes()
    assert result.size_bytes == len(flat) and result.gzip_bytes == tflite.gzip_size(flat)
    assert result.float32_weight_bytes == 4 * sum(int(np.prod(w.shape)) for w in trained.weights)
    assert result.compression > 4  # int8 alone is 4x; zeros and 8 shared values compress further
    assert result.conversion.top1_agreement >= 0.98 and result.parity.float_accuracy > 0.9
    assert result.latency_ms_batch1 > 0 and result.images_per_s_batch64 > 0
    assert result.description == "prune 50% + 8 clusters + QAT int8, distilled"
    recipes = {stage: json.loads((tmp_path / "runs" / "deep" / stage / "recipe.json").read_text())  # the shared loop's
               for stage in ("prune", "qat")}
    assert recipes["prune"]["schedule"]["kind"] == "cosine"
    assert recipes["prune"]["learning_rate"] == pipeline.finetune_recipe().learning_rate
    assert recipes["qat"]["learning_rate"] == pytest.approx(
        pipeline.finetune_recipe().learning_rate * pipeline.QAT_LEARNING_RATE_SCALE)  # from calibrated ranges
    assert list(result.stage_accuracy) == ["prune", "cluster", "qat"]  # Keras accuracy after each stage
    assert result.stage_accuracy["qat"] == pytest.approx(result.conversion.float_accuracy)
    assert result.calibration_images == len(data.representative) == 32  # QAT conversion calibrates too


def test_a_failed_parity_check_writes_nothing(data, tmp_path):
    untrained = _data.model()
    broken = pipeline.ExportData(train=data.train, representative=data.representative, test_images=data.test_images,
                                 test_labels=(data.test_labels + 1) % _data.CLASSES, mean=data.mean, std=data.std)
    pruned = pipeline.Plan("p", prune=0.9)
    (tmp_path / "p.tflite").write_bytes(b"an earlier export's p.tflite")  # it stayed: another model's variant
    # The conversion check compares with the compressed Keras model; the message says so and gives the float
    # model's accuracy too (it called the compressed model's "float").
    with pytest.raises(tflite.ParityError, match=r"top-1 agreement [\d.]+ < 1\.01\. .*\(Keras after prune \d+\.\d\d%, "
                                                 r".*; the float model before compression: \d+\.\d\d%$"):
        # labels shifted: the pruned untrained model's accuracy and the float one's differ at random;
        # insist on an impossible agreement instead, so the check must fail
        pipeline.export_variant(untrained, pruned, data=broken, out_dir=tmp_path, max_accuracy_drop=None,
                                min_conversion_agreement=1.01, latency_runs=1)
    assert not (tmp_path / "p.tflite").exists()
    # More clusters than a kernel has weights: refused before any stage trains (TFMOT failed after them).
    with pytest.raises(ValueError, match=r"^clusters=100000 exceeds the \d+ weights of the kernel of '.*'\. Accepted: "
                                         r"2 to \d+ clusters"):
        pipeline.export_variant(untrained, pipeline.Plan("pc", prune=0.5, cluster=100000), data=data,
                                out_dir=tmp_path, latency_runs=1)
    assert not (tmp_path / "runs" / "pc").exists()


def test_a_built_subclassed_model_exports_post_training_variants(data, tmp_path):
    import tf_keras as keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(_data.CLASSES)

        def call(self, x):
            return self.head(self.pool(self.conv(x)))

    net = Net()
    net.build((None, *_data.SHAPE))  # its outputs are None: "TypeError: object of type 'NoneType' has no len()"
    result = pipeline.export_variant(net, pipeline.Plan("float32"), data=data, out_dir=tmp_path, latency_runs=1)
    assert result.parity.top1_agreement == 1.0 and (tmp_path / "float32.tflite").exists()
    with pytest.raises(ValueError, match=r"plan 'p' \(prune 50% \+ float32\) needs a functional tf_keras model .* "
                                         r"a subclassed model"):
        pipeline.export_variant(net, pipeline.Plan("p", prune=0.5), data=data, out_dir=tmp_path, latency_runs=1)


def test_export_json_keeps_every_variant_of_one_source_and_refuses_another_source(trained, data, tmp_path):
    import tf_keras as keras

    def report(model, out=tmp_path, **changes):
        return pipeline.ExportReport(out, model, **{**dict(name="resnet20", weights="w.h5", data=data,
                                                                 dataset="synthetic"), **changes})

    first = report(trained)
    assert not (tmp_path / "export.json").exists()  # written with the first variant: a refused plan leaves nothing
    integer = pipeline.export_variant(trained, pipeline.Plan("int8io", quantize="int8", integer_io=True), data=data,
                                      out_dir=tmp_path, max_accuracy_drop=5.0, latency_runs=1)
    assert (integer.input_dtype, integer.output_dtype) == ("uint8", "int8")
    assert tflite.TFLiteModel(tmp_path / "int8io.tflite").input_dtype == np.uint8
    assert integer.parity.top1_agreement > 0.9 and integer.description == "PTQ int8 (uint8 in, int8 out)"
    first.add(integer)
    first.add(pipeline.export_variant(trained, pipeline.Plan("float32"), data=data, out_dir=tmp_path,
                                      latency_runs=1))
    on_disk = json.loads((tmp_path / "export.json").read_text())  # written after each variant
    assert [(v["name"], v["input_dtype"]) for v in on_disk["variants"]] == [("int8io", "uint8"), ("float32", "float32")]
    assert [v["file"] for v in on_disk["variants"]] == ["int8io.tflite", "float32.tflite"]  # the directory moves
    assert on_disk["output"] == "logits" and on_disk["input"]["pixels"] == "raw, 0 to 255"
    assert on_disk["input"]["shape"] == [12, 12, 1] and on_disk["input"]["mean"] == list(_data.MEAN)
    assert on_disk["input"]["scale"] == pytest.approx(1 / 255)
    first.fail("int8io", "parity check failed: ...")  # export_variant removed its file
    # Exporting again from the same source (another name for the same weights) adds and replaces variants.
    again = report(trained, weights="resnet20.synthetic")
    float32 = pipeline.export_variant(trained, pipeline.Plan("float32"), data=data, out_dir=tmp_path, latency_runs=1)
    again.add(float32)
    on_disk = json.loads((tmp_path / "export.json").read_text())
    assert [v["name"] for v in on_disk["variants"]] == ["float32"] and on_disk["weights"] == "resnet20.synthetic"
    assert on_disk["failures"] == {"int8io": "parity check failed: ..."}
    # Two exports of the source into the directory at once: each change re-reads the file, so neither
    # loses the other's variants; a variant that failed and then passes is no longer a failure.
    again.add(dataclasses.replace(float32, name="float32_again"))  # one the first report never saw
    first.add(integer)
    on_disk = json.loads((tmp_path / "export.json").read_text())
    assert [v["name"] for v in on_disk["variants"]] == ["float32", "float32_again", "int8io"]
    assert on_disk["failures"] == {}
    # Another source's variants would sit beside these under one report: refused before any work.
    before = (tmp_path / "export.json").read_bytes()
    with pytest.raises(ValueError, match=r"export.json records an export of 'resnet20' \(weights 'w.h5', "
                                         r"dataset 'synthetic'\); this export's model_weights_sha256 differ .* "
                                         r"Accepted: the same source, to add variants to it, or another --out"):
        report(_data.model())
    with pytest.raises(ValueError, match="this export's model, dataset differ"):
        report(trained, name="resnet56", dataset="digits")
    assert (tmp_path / "export.json").read_bytes() == before
    older = {k: v for k, v in json.loads(before).items() if k not in ("model_weights_sha256", "input")}
    (tmp_path / "export.json").write_text(json.dumps({**older, "failures": []}))  # an older zoo's
    with pytest.raises(ValueError, match=r"written by an older zoo export, which recorded no hash of the source's "
                                         r"weights.*Accepted: another --out"):
        report(trained)
    # A model that takes any image size: its open dimensions are null (int(None) failed).
    inputs = keras.Input((None, None, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    anysize = keras.Model(inputs, keras.layers.Dense(_data.CLASSES)(x))
    assert report(anysize, out=tmp_path / "any", name="any").source["input"]["shape"] == [None, None, 1]
    for broken in ({**older, "model_weights_sha256": "0", "variants": [1, "x"]},  # AttributeError after a variant
                   {**older, "model_weights_sha256": "0", "failures": []}):  # said "an older zoo export"
        (tmp_path / "export.json").write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=r"is not an export report \(expected 'variants', a list of objects with "
                                             r"a 'name', and 'failures', an object\)"):
            report(trained)
    with pytest.raises(ValueError, match=r"integer_io needs quantize int8 or qat \(integer tensors\); received quantize 'fp16'"):
        pipeline.Plan("x", quantize="fp16", integer_io=True)
    assert pipeline.named_plan(prune=0.5, quantize="qat", integer_io=True).name == "pruned50_qat_uint8io"


def test_plans_validate_their_values():
    with pytest.raises(ValueError, match="unknown quantize 'int4'; accepted: none, fp16, dynamic, int8, qat"):
        pipeline.Plan("x", quantize="int4")
    with pytest.raises(ValueError, match=r"prune must be a sparsity in \(0, 1\); received 1.5"):
        pipeline.Plan("x", prune=1.5)
    with pytest.raises(ValueError, match=r"m_by_n must be \(m, n\) with 0 < m < n"):
        pipeline.Plan("x", m_by_n=(4, 2))
    with pytest.raises(ValueError, match="fine-tunes: pass train data"):
        pipeline.compress(_data.model(), pipeline.Plan("x", cluster=4))
    assert [p.name for p in pipeline.STANDARD_PLANS][:5] == ["float32", "fp16", "dynamic", "int8", "qat_int8"]
    with pytest.raises(ValueError, match="unknown fine-tuning stage 'pruning' in epochs; accepted: low_rank, prune"):
        pipeline.Plan("x", prune=0.5, epochs={"pruning": 2})
    with pytest.raises(ValueError, match=r"epochs\['prune'\] must be an int >= 1; received 0"):
        pipeline.Plan("x", prune=0.5, epochs={"prune": 0})
    with pytest.raises(ValueError, match=r"prune_layers refines prune; give prune too \(received prune_layers .* without it\)"):
        pipeline.Plan("x", prune_layers=(("dense*", 0.9),))
    with pytest.raises(ValueError, match=r"sparsities must be in \[0, 1\); received \[\('d', 1.0\)\]"):
        pipeline.Plan("x", prune=0.5, prune_layers=(("d", 1.0),))
    with pytest.raises(ValueError, match=r"distill applies to fine-tuning; plan 'x' \(PTQ int8\) has none"):
        pipeline.Plan("x", quantize="int8", distill=True)
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine or None .*; received 'step'"):
        pipeline.Plan("x", prune=0.5, schedule="step")


def test_plan_errors_name_parameters_as_the_caller_says():
    with pytest.raises(ValueError, match=r"^epochs\['prune'\]: the plan \(8 clusters \+ float32\) has no prune stage"):
        pipeline.named_plan(cluster=8, epochs={"prune": 2})  # it said "plan 'float32'", a name it never had
    flags = {"prune": "--prune", "prune_layers": "--prune-layer", "epochs_of": "--epochs {stage}=N",
             "plan": "the variant"}
    with pipeline.parameter_names(flags):
        with pytest.raises(ValueError, match=r"^--prune-layer refines --prune; give --prune too \(received --prune-layer a=0.5 without it\)$"):
            pipeline.Plan("x", prune_layers=(("a", 0.5),))
        with pytest.raises(ValueError, match=r"^--epochs cluster=N: the variant \(prune 80% \+ float32\) has no"):
            pipeline.named_plan(prune=0.8, epochs={"cluster": 3})
        with pytest.raises(ValueError, match=r"^cluster must be an int >= 2"):  # a name not given stays
            pipeline.Plan("x", cluster=1)
    with pytest.raises(ValueError, match=r"^prune must be a sparsity"):  # only inside the block
        pipeline.Plan("x", prune=2.0)


def test_per_layer_sparsity_and_stage_epochs_reach_the_transforms(tmp_path):
    from export import prune

    model = _data.model()
    conv = [l.name for l in model.layers if type(l).__name__ == "Conv2D"]
    dense = [l.name for l in model.layers if type(l).__name__ == "Dense"]
    plan = pipeline.Plan("p", prune=0.5, prune_layers=((dense[0], 0.9),), epochs={"prune": 2})
    assert plan.describe() == f"prune 50% ({dense[0]}: 90%) + float32"
    out = pipeline.compress(model, plan, train=lambda epoch: _data.train_data(epoch, steps=10), work_dir=tmp_path)
    zeros = prune.sparsity(out)
    assert zeros[dense[0]] == pytest.approx(0.9, abs=0.01) and zeros[conv[1]] == pytest.approx(0.5, abs=0.02)
    # the stem stays dense (an edge layer no pattern names); the classifier, named, is pruned
    assert prune.edge_layers(model) == (conv[0], dense[0]) and zeros[conv[0]] == 0.0
    state = json.loads((tmp_path / "prune" / "state.json").read_text())
    assert state["step"] == 20 and len(state["history"]) == 2  # two epochs of 10 steps


# -- re-exports, distillation, schedules, empty stages ---------------------------------------------


def _short(epoch: int):
    return _data.train_data(epoch, steps=2)


def test_a_work_dir_resumes_the_same_plan_and_source_and_starts_over_for_others(tmp_path):
    from export import prune

    first, other = _data.tiny_model(seed=0), _data.tiny_model(seed=1)

    def run(model, sparsity):
        return pipeline.compress(model, pipeline.Plan("pruned", prune=sparsity), train=_short, work_dir=tmp_path)

    done = run(first, 0.5)
    log = tmp_path / "prune" / "log.csv"
    rows = log.read_text().count("\n")
    again = run(first, 0.5)  # the same fingerprint: the finished run is restored, not trained again
    assert log.read_text().count("\n") == rows
    for a, b in zip(done.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert json.loads((tmp_path / pipeline.FINGERPRINT_FILE).read_text())["plan"]["prune"] == 0.5
    # another sparsity, then another source model, under the same plan name: each starts over
    assert prune.sparsity(run(first, 0.75))["fc1"] == pytest.approx(0.75, abs=0.01)
    stem_model = run(other, 0.75)
    stem = stem_model.get_layer("conv1").kernel.numpy()  # an edge layer: dense, fine-tuned a little
    source, old = other.get_layer("conv1").kernel.numpy(), first.get_layer("conv1").kernel.numpy()
    assert np.abs(stem - source).max() < 0.05 < np.abs(stem - old).max()
    # other training data (a function, so no name tells them apart) starts over too
    fingerprint = json.loads((tmp_path / pipeline.FINGERPRINT_FILE).read_text())
    other_data = pipeline.compress(other, pipeline.Plan("pruned", prune=0.75), work_dir=tmp_path,
                                   train=lambda epoch: _data.train_data(epoch + 7, steps=2))
    assert json.loads((tmp_path / pipeline.FINGERPRINT_FILE).read_text())["train"] != fingerprint["train"]
    assert any(np.abs(a.numpy() - b.numpy()).max() > 0  # trained again, not the last run restored
               for a, b in zip(other_data.weights, stem_model.weights))


def test_plans_that_differ_in_integer_io_alone_fine_tune_once(tmp_path):
    model, runs = _data.tiny_model(), tmp_path / "runs"

    def run(**plan):
        plan = pipeline.named_plan(quantize="qat", **plan)
        return pipeline.compress(model, plan, train=_short, work_dir=runs / plan.name, share_runs=True)

    qat = run()
    log = runs / "qat" / "qat" / "log.csv"
    rows = log.read_text().count("\n")
    uint8io = run(integer_io=True)  # QAT was trained a second time, in runs/qat_uint8io
    assert log.read_text().count("\n") == rows and not (runs / "qat_uint8io").exists()
    for a, b in zip(qat.weights, uint8io.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    run(epochs={"qat": 2})  # another fine-tuning: its own runs
    assert (runs / "qat_qat2ep" / "qat" / "log.csv").exists() and log.read_text().count("\n") == rows


def test_a_distilled_plan_leaves_the_source_model_trainable():
    model = _data.tiny_model()
    trainable = len(model.trainable_weights)
    out = pipeline.compress(model, pipeline.Plan("d", prune=0.5, distill=True), train=_short)
    assert model.trainable and len(model.trainable_weights) == trainable
    assert len(out.trainable_weights) == trainable


def test_pruning_reaches_its_target_by_the_last_step_of_however_short_a_stage():
    import tensorflow as tf
    from export import prune

    for steps in range(1, 300):
        schedule = pipeline._pruning_schedule(steps)  # TFMOT updates masks at step multiples of frequency, from 1
        assert 1 <= schedule["end_step"] <= steps and schedule["end_step"] % schedule["frequency"] == 0
    images, labels = _data.pixels(32)
    batches = tf.data.Dataset.from_tensor_slices((_data.normalized(images), labels)).batch(16)  # a Dataset
    out = pipeline.compress(_data.tiny_model(), pipeline.Plan("p", prune=0.8), train=batches, finetune_steps=1)
    zeros = prune.sparsity(out)
    assert zeros["fc1"] == pytest.approx(0.8, abs=0.01) and zeros["conv2"] == pytest.approx(0.8, abs=0.01)
    with pytest.raises(ValueError, match=r"plan 'p' \(prune 80% \+ float32\) did not reach its sparsity after "
                                         r"fine-tuning: fc1 0.800 < 0.900"):  # the check after every pruning stage
        pipeline._check_sparsity(out, {"conv2": 0.8, "fc1": 0.9}, pipeline.Plan("p", prune=0.8))
    # TFMOT prunes a separable convolution's pointwise kernel and no depthwise kernel: so does the check.
    import tf_keras as keras

    inputs = keras.Input(_data.SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(keras.layers.SeparableConv2D(8, 3, name="sep")(x))
    x = keras.layers.Dense(16, activation="relu", name="fc1")(keras.layers.Flatten()(x))
    separable = keras.Model(inputs, keras.layers.Dense(_data.CLASSES, name="predictions")(x))
    assert [w.name for w in prune.kernel_weights(separable.get_layer("sep"))] == ["sep/pointwise_kernel:0"]
    zeros = prune.sparsity(pipeline.compress(separable, pipeline.Plan("p", prune=0.8), train=batches,
                                             finetune_steps=1))
    assert zeros["sep"] == pytest.approx(0.8, abs=1 / 32) and "dw" not in zeros  # 4 x 8 pointwise weights


def test_a_2_by_4_plan_is_checked_block_by_block_after_fine_tuning():
    import tensorflow as tf
    from export import prune

    images, labels = _data.pixels(32)
    batches = tf.data.Dataset.from_tensor_slices((_data.normalized(images), labels)).batch(16)
    plan = pipeline.Plan("p", m_by_n=(2, 4))
    out = pipeline.compress(_data.tiny_model(), plan, train=batches, finetune_steps=1)
    assert prune.sparsity(out)["fc1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"did not reach its sparsity after fine-tuning: fc1 \d+ of 512 blocks of 4 "
                                         r"with fewer than 2 zeros"):  # the same check on the dense model
        pipeline._check_sparsity(_data.tiny_model(), {"fc1": 0.5}, plan)
    # TFMOT's blocks run along the input channels, a row's partial block padded with zeros
    kernel = np.arange(1, 11, dtype=np.float32).reshape(5, 2)  # Dense: 5 inputs, 2 outputs
    np.testing.assert_array_equal(pipeline._m_by_n_blocks(kernel, 4),
                                  [[1, 3, 5, 7], [9, 0, 0, 0], [2, 4, 6, 8], [10, 0, 0, 0]])
    conv = np.random.default_rng(0).normal(size=(3, 3, 6, 2))  # [h, w, in, out] -> [out x h x w, in]
    assert pipeline._m_by_n_blocks(conv, 4).shape == (2 * 9 * 2, 4)
    np.testing.assert_array_equal(pipeline._m_by_n_blocks(conv, 4)[:2], [conv[0, 0, :4, 0], [*conv[0, 0, 4:, 0], 0, 0]])


def test_fine_tuning_by_dataset_name_reads_it_at_the_models_image_size():
    import zoo

    model = zoo.create_model("resnet20", input_shape=(12, 12, 1), num_classes=10, stage_depths=(1, 1, 1))
    plan = pipeline.Plan("pq", prune=0.5, quantize="qat")  # pruning takes steps of each epoch; QAT calibrates first
    out = pipeline.compress(model, plan, train="digits", finetune_steps=2)  # the digits are 8x8: this failed
    assert out.input_shape == (None, 12, 12, 1)  # (compress checks the pruned kernels' sparsity itself)


def test_a_stage_with_nothing_to_act_on_is_refused(tmp_path):
    import tf_keras as keras

    inputs = keras.Input(_data.SHAPE)
    convolutions = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ValueError, match=r"plan 'lr' \(low-rank Dense .*\) factors Dense layers; .* has none"):
        pipeline.compress(convolutions, pipeline.Plan("lr", low_rank=0.5), train=_short)
    with pytest.raises(ValueError, match=r"no Dense layer of 'tiny' gets smaller .* \(eligible: fc1, predictions\)"):
        pipeline.compress(_data.tiny_model(), pipeline.Plan("lr", low_rank=1.0), train=_short)
    edges_only = keras.Model(inputs, keras.layers.Dense(4, name="predictions")(
        keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="conv1")(inputs))))
    with pytest.raises(ValueError, match="nothing to prune .* Prunable layers: conv1, predictions; conv1, "
                                         "predictions stay dense as edge layers"):
        pipeline.compress(edges_only, pipeline.Plan("p", prune=0.8), train=_short, work_dir=tmp_path / "p")
    with pytest.raises(ValueError, match="pattern 'nomatch' matches no prunable layer"):
        pipeline.compress(_data.tiny_model(), pipeline.Plan("q", prune=0.5, prune_layers=(("nomatch", 0.5),)),
                          train=_short, work_dir=tmp_path / "q")
    assert not list(tmp_path.iterdir())  # refused before the fine-tuning runs' fingerprint.json was written
    # ... but a pattern naming a layer low rank adds is checked on the model pruning sees
    from export import prune

    factored = pipeline.compress(_data.tiny_model(), pipeline.Plan("lrp", low_rank=0.5, prune=0.5, prune_layers=(
        ("fc1_lowrank", 0.75),)), train=_short, finetune_steps=1)
    assert prune.sparsity(factored)["fc1_lowrank"] == pytest.approx(0.75, abs=0.02)


def test_plans_refuse_options_they_would_ignore_and_are_immutable_and_hashable():
    with pytest.raises(ValueError, match=r"epochs\['cluster'\]: plan 'x' \(prune 80% \+ float32\) has no cluster "
                                         "stage; its stages: prune"):
        pipeline.Plan("x", prune=0.8, epochs={"cluster": 3})
    with pytest.raises(ValueError, match=r"schedule applies to fine-tuning; plan 'x' \(PTQ int8\) has none"):
        pipeline.Plan("x", quantize="int8", schedule="cosine")
    with pytest.raises(ValueError, match=r"prune_layers name each glob once .*received fc\* more than once"):
        pipeline.Plan("x", prune=0.8, prune_layers=(("fc*", 0.9), ("fc*", 0.5)))
    plan = pipeline.Plan("x", prune=0.8, epochs={"prune": 2}, m_by_n=None)
    with pytest.raises(TypeError):
        plan.epochs["prune"] = 0
    assert {plan, pipeline.Plan("x", prune=0.8, epochs={"prune": 2})} == {plan}
    assert pipeline.Plan("c", cluster=np.int64(16)).cluster == 16
    assert [pipeline.named_plan(**p).name for p in (
        {}, {"prune": 0.3}, {"prune": 0.9}, {"m_by_n": (2, 4)}, {"prune": 0.985, "prune_layers": (("fc*", 0.5),)},
        {"low_rank": 0.9, "cluster": 16, "quantize": "qat", "epochs": {"qat": 2}, "distill": True})] == [
        "float32", "pruned30", "pruned90", "pruned2of4", "pruned98.5_fcx-50",
        "lowrank90_clustered16_qat_qat2ep_distilled"]
    # Names stay apart where a lossy spelling would merge them.
    assert [pipeline.named_plan(**p).name for p in (
        {"prune": 0.3, "prune_layers": (("conv[12]", 0.5),)}, {"prune": 0.3, "prune_layers": (("conv12", 0.5),)},
        {"prune": 0.3, "prune_layers": (("conv125", 0.0),)}, {"prune": 0.123}, {"prune": 0.1234})] == [
        "pruned30_conv12hee1a6c-50", "pruned30_conv12-50", "pruned30_conv125-0", "pruned12.3", "pruned12.34"]
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(plan)) == plan == copy.deepcopy(plan)
    assert dataclasses.asdict(plan)["epochs"] == {"prune": 2}


def _zoo(*args, cwd):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (["--prune", "1.5"], "prune must be a sparsity in (0, 1); received 1.5"),
    (["--m-by-n", "2-4"], "expected M:N with 0 < M < N, such as 2:4; received '2-4'"),
    (["--all", "--cluster", "8"], "--all exports preset variants; received --cluster too. Accepted: --all alone"),
    (["--deep-compression", "--quantize", "int8"], "--deep-compression exports preset variants"),
    (["--prune-layer", "fc*=0.9"], "--prune-layer refines --prune; give --prune too"),
    (["--prune", "0.5", "--prune-layer", "fc*"], "expected GLOB=SPARSITY with SPARSITY in [0, 1), such as 'fc*=0.95'; "
                                                 "received 'fc*'"),
    (["--prune", "0.5", "--epochs", "pruning=2"], "unknown fine-tuning stage 'pruning' in --epochs; accepted: "
                                                  "low_rank, prune, cluster, qat"),
    (["--prune", "0.5", "--epochs", "prune=two"], "--epochs prune=N needs a whole number of epochs; received 'two'"),
    (["--quantize", "int4"], "invalid choice: 'int4'"),
    (["--prune", "0.5", "--lr-schedule", "step"], "invalid choice: 'step'"),
    (["--finetune-steps", "0"], "argument --finetune-steps: must be a positive integer; received '0'"),
    (["--calibration", "0"], "argument --calibration: must be a positive integer; received '0'"),
    (["--max-accuracy-drop", "nan"], "--max-accuracy-drop must be a number of points >= 0; received nan"),
    # the plan's errors in the flags' names (`pipeline.parameter_names`)
    (["--prune", "0.5", "--prune-layer", "fc*=1.5"], "with SPARSITY in [0, 1), such as 'fc*=0.95'; received 'fc*=1.5'"),
    (["--prune", "0.5", "--prune-layer", "a=0.5", "--prune-layer", "a=0.6"], "--prune-layer name each glob once"),
    (["--cluster", "8", "--epochs", "prune=2"], "--epochs prune=N: the variant (8 clusters + float32) has no prune "
                                                "stage; its stages: cluster"),
    (["--prune", "0.5", "--epochs", "prune=0"], "--epochs prune=N must be an int >= 1; received 0"),
    (["--m-by-n", "4:2"], "expected M:N with 0 < M < N, such as 2:4; received '4:2'"),
    (["--prune", "0.5", "--m-by-n", "2:4"], "give --prune (a sparsity) or --m-by-n (structured), not both"),
    (["--lr-schedule", "cosine"], "--lr-schedule applies to fine-tuning; the variant (float32) has none"),
    (["--low-rank", "2"], "--low-rank must be an energy in (0, 1]; received 2.0"),
    (["--distill"], "--distill applies to fine-tuning; the variant (float32) has none"),
    (["--integer-io", "--quantize", "dynamic"], "--integer-io needs --quantize int8 or qat (integer tensors); "
                                                "received --quantize 'dynamic'"),
    (["--all", "--integer-io"], "--all exports preset variants; received --integer-io too"),
    (["--finetune-steps", "2"], "--finetune-steps limits fine-tuning; float32 (float32) has none"),
    (["--quantize", "fp16", "--calibration", "64"], "--calibration calibrates int8 conversion; fp16 (FP16) has none"),
])
def test_cli_rejects_bad_arguments_in_one_line(args, message, tmp_path):
    done = _zoo("export", "resnet20", "--out", str(tmp_path / "out"), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(("zoo: error:", "zoo export: error:")) and message in last


def test_cli_exports_pretrained_weights(tmp_path):
    import zoo
    from export import saved_model

    done = _zoo("export", "resnet20", "--weights", "fashion_mnist", "--dataset", "synthetic", "--quantize", "dynamic",
                "--prune", "0.5", "--prune-layer", "stage3*=0.9", "--epochs", "prune=2", "--lr-schedule", "cosine",
                "--finetune-steps", "2", "--saved-model",
                "--test-limit", "64", "--max-accuracy-drop", "100", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "XNNPACK" not in done.stderr  # LiteRT's notice on its first interpreter
    assert "note: resnet20.fashion_mnist was trained on fashion_mnist; its variants are checked and normalized " \
           "on synthetic" in done.stdout
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    name = "pruned50_stage3x-90_dynamic_prune2ep_cosine"  # named by its parameters
    assert [(v["name"], v["description"]) for v in report["variants"]] == [
        (name, "prune 50% (stage3*: 90%) + dynamic-range int8")]
    assert report["weights"] == "resnet20.fashion_mnist"
    assert (tmp_path / "out" / f"{name}.tflite").stat().st_size == report["variants"][0]["size_bytes"]
    state = json.loads((tmp_path / "out" / "runs" / name / "prune" / "state.json").read_text())
    assert state["step"] == 4  # two epochs of two steps
    recipe = json.loads((tmp_path / "out" / "runs" / name / "prune" / "recipe.json").read_text())
    assert recipe["schedule"]["kind"] == "cosine" and recipe["epochs"] == 2
    meta = zoo.get_weights_info("resnet20.fashion_mnist")  # the SavedModel carries the weights' own metadata
    about = saved_model.read_metadata(tmp_path / "out" / "saved_model")
    assert about["weights"] == meta.name and about["sha256"] == meta.source.sha256
    assert about["class_names"] == list(meta.head.class_names)
    # ... and normalizes as the TFLite variants and their checks do: by --dataset's statistics (it took
    # the weights' Fashion-MNIST ones while the .tflite files took synthetic's)
    synthetic = pipeline.load_export_data("synthetic", representative=1, test_limit=1)
    assert about["input"]["mean"] == list(synthetic.mean) != list(meta.input.mean)
    assert about["input"]["std"] == list(synthetic.std)
    assert report["input"]["mean"] == about["input"]["mean"] and report["saved_model"] == "saved_model"
    # A second export into the same --out adds its variant to export.json (it replaced the file before).
    done = _zoo("export", "resnet20", "--weights", "DEFAULT", "--dataset", "synthetic", "--quantize", "int8",
                "--integer-io", "--test-limit", "64", "--max-accuracy-drop", "100", "--out", str(tmp_path / "out"),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert [(v["name"], v["input_dtype"], v["output_dtype"]) for v in report["variants"]] == [
        (name, "float32", "float32"), ("int8_uint8io", "uint8", "int8")]


def _training_run(tmp_path):
    """A `zoo train`-like run directory: final_weights.h5 of a 12x12x1 resnet20 (one block a stage), run.json."""
    import zoo
    from training.runs import RunSpec

    run = tmp_path / "run"
    run.mkdir()
    options = {"stage_depths": (1, 1, 1)}
    model = zoo.create_model("resnet20", input_shape=(12, 12, 1), num_classes=10, **options)
    model.save_weights(run / "final_weights.h5")
    # a distilled run: its teacher (28x28 Fashion-MNIST) fits neither this run nor its data, and building
    # the trained model does not need it
    (run / "run.json").write_text(json.dumps(RunSpec(model="resnet20", dataset="synthetic", input_shape=(12, 12, 1),
                                                     options=options, teacher="resnet20.fashion_mnist").to_dict()))
    return run


def test_cli_exports_a_training_runs_weights_built_as_its_run_json_records(tmp_path):
    import hashlib

    from export import saved_model
    from zoo.cli import main

    weights = _training_run(tmp_path) / "final_weights.h5"
    assert main(["export", "resnet20", "--weights", str(weights), "--test-limit", "16",
                 "--saved-model", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert report["dataset"] == "synthetic" and [v["name"] for v in report["variants"]] == ["float32"]
    about = saved_model.read_metadata(tmp_path / "out" / "saved_model")
    assert about["input"]["shape"] == [12, 12, 1] and about["class_names"] == [f"class_{i}" for i in range(10)]
    assert about["weights"] == str(weights) and about["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_cli_exports_a_fine_tuning_runs_weights_built_as_the_run_built_them(tmp_path, capsys):
    import zoo
    from training import finetune, runs
    from training.runs import RunSpec
    from zoo.cli import main

    run = tmp_path / "ft"
    run.mkdir()
    options = {"stage_depths": (1, 1, 1)}
    source = zoo.create_model("resnet20", input_shape=(12, 12, 1), num_classes=7, **options)
    tuned = finetune(source, 10, train_layers="head")
    for w in tuned.weights:  # a fine-tuned model unlike a fresh one anywhere
        w.assign(w + 0.01)
    tuned.save_weights(run / "final_weights.h5")
    # as `zoo finetune --weights resnet20.h5` records its source: relative, and shaped like a shipped ARCH.TAG
    spec = RunSpec(model="resnet20", dataset="synthetic", input_shape=(12, 12, 1), options=options, num_classes=10,
                   source_weights="resnet20.h5", source_classes=7, train_layers="head")
    (run / "run.json").write_text(json.dumps(spec.to_dict()))
    built = runs.build_model(spec, weights=run / "final_weights.h5")  # resnet20.h5 is not here: not needed
    assert [w.name for w in built.trainable_weights] == [w.name for w in tuned.trainable_weights]  # head only
    for a, b in zip(built.weights, tuned.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    backbone = zoo.create_model("resnet20", input_shape=(12, 12, 1), include_top=False, **options)
    backbone.save_weights(str(tmp_path / "backbone"))  # a TF checkpoint without the head's values
    with pytest.raises(ValueError, match=r"do not fit this 'resnet20' model \(model layers not in the file: "
                                         r"predictions"):
        runs.build_model(spec, weights=tmp_path / "backbone")
    export = ["export", "resnet20", "--weights", str(run / "final_weights.h5"), "--test-limit", "16",
              "--out", str(tmp_path / "out")]
    assert main([*export, "-o", "stage_depths=[1, 1, 1]"]) == 0  # it was refused: "records a resnet20 fine-tuned"
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert report["dataset"] == "synthetic" and [v["name"] for v in report["variants"]] == ["float32"]
    for flags, received in ((["--num-classes", "5"], "--num-classes 5 (the run's: 10)"),
                            (["-o", "stage_depths=()"], "-o stage_depths () (the run's: (1, 1, 1))"),
                            (["-o", "stage_depths=None"], "-o stage_depths None (the run's: (1, 1, 1))")):
        assert main([*export, *flags]) == 2
        assert (f"records a fine-tuning run, whose model zoo export builds as the run did; received {received}"
                in capsys.readouterr().err)


def test_cli_finetunes_a_training_runs_weights_with_its_options_and_classes(tmp_path, capsys):
    from zoo.cli import main

    run = _training_run(tmp_path)  # 12x12 synthetic, a distilled run
    argv = ["finetune", "resnet20", "--weights", str(run / "final_weights.h5"), "--dataset", "digits", "--limit",
            "64", "--epochs", "1", "--out", str(tmp_path / "ft")]
    assert main([*argv, "--source-classes", "0"]) == 2  # refused, not replaced by the run's 10
    assert "source_classes must be a positive int or None; received 0" in capsys.readouterr().err
    assert main(argv) == 0, capsys.readouterr().err
    spec = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert spec["options"] == {"stage_depths": [1, 1, 1]} and spec["source_classes"] == 10
    assert spec["input_shape"] == [8, 8, 1] and spec["teacher"] is None  # the new data's shape, as for shipped


def test_cli_finetunes_again_a_run_fine_tuned_from_shipped_weights_at_another_size(tmp_path, capsys):
    import zoo
    from training import finetune, runs
    from training.runs import RunSpec
    from zoo.cli import main

    run = tmp_path / "ft"
    run.mkdir()
    # at 64x64, stem="auto" picks the ImageNet stem; the shipped weights pin the 28x28 one they were trained with
    source = zoo.create_model("resnet20", weights="fashion_mnist", input_shape=(64, 64, 1))
    finetune(source, 10, train_layers="head").save_weights(run / "final_weights.h5")
    spec = RunSpec(model="resnet20", dataset="digits", input_shape=(64, 64, 1), source_weights="fashion_mnist",
                   train_layers="head")
    (run / "run.json").write_text(json.dumps(spec.to_dict()))
    assert spec.options == {} and runs.source_options(spec).options["stem"] == "small"  # what run.json leaves out
    argv = ["finetune", "resnet20", "--weights", str(run / "final_weights.h5"), "--dataset", "digits",
            "--input-shape", "64", "64", "1", "--limit", "32", "--epochs", "1", "--out", str(tmp_path / "again")]
    assert main(argv) == 0, capsys.readouterr().err  # it built the ImageNet stem: "stem_conv (file [(3, 3, 1, 16)]"
    assert json.loads((tmp_path / "again" / "run.json").read_text())["options"]["stem"] == "small"


def test_cli_finetunes_again_a_fine_tuning_runs_weights_whose_head_is_not_the_familys(tmp_path, capsys):
    import zoo
    from training import finetune
    from training.runs import RunSpec
    from zoo.cli import main

    run = tmp_path / "ft"
    run.mkdir()
    source = zoo.create_model("nin_cifar", input_shape=(16, 16, 1), num_classes=7)
    source.save_weights(tmp_path / "source.h5")
    finetune(source, 10, train_layers="head").save_weights(run / "final_weights.h5")  # a new head, not head_conv
    spec = RunSpec(model="nin_cifar", dataset="digits", input_shape=(16, 16, 1), source_weights=str(tmp_path /
                   "source.h5"), source_classes=7, train_layers="head")
    (run / "run.json").write_text(json.dumps(spec.to_dict()))
    argv = ["finetune", "nin_cifar", "--weights", str(run / "final_weights.h5"), "--dataset", "digits",
            "--input-shape", "16", "16", "1", "--limit", "32", "--epochs", "1", "--out", str(tmp_path / "again")]
    assert main(argv) == 0, capsys.readouterr().err  # it was "model layers not in the file: head_conv"
    (run / "final_weights.h5").unlink()  # its weights are in the new run's: it was "cannot load weights='...ft/..."
    assert main(["eval", "nin_cifar", "--weights", str(tmp_path / "again" / "final_weights.h5"), "--dataset",
                 "digits", "--limit", "32"]) == 0, capsys.readouterr().err  # built as both runs built it


def test_cli_builds_a_weights_file_without_run_json_from_its_flags(tmp_path, capsys):
    from zoo.cli import main

    run = _training_run(tmp_path)
    (run / "run.json").unlink()
    export = ["export", "resnet20", "--weights", str(run / "final_weights.h5"), "--dataset", "synthetic",
              "--test-limit", "16", "--out", str(tmp_path / "out")]
    assert main(export) == 2  # the model's defaults do not fit, and the error says what to give
    assert "give --input-shape and --num-classes, or keep the training run's run.json" in capsys.readouterr().err
    assert main([*export, "--input-shape", "12", "12", "1", "--num-classes", "10", "-o", "stage_depths=(1, 1, 1)",
                 "--quantize", "int8", "--calibration", "100000", "--max-accuracy-drop", "100"]) == 0
    assert re.search(r"--calibration 100000: synthetic's training split has [\d,]+ images; int8 is calibrated on "
                     r"all of them", capsys.readouterr().out)  # it was capped silently
    rgb = [*export, "--input-shape", "12", "12", "3", "--num-classes", "10", "-o", "stage_depths=(1, 1, 1)"]
    assert main([*rgb, "--quantize", "int8", "--out", str(tmp_path / "rgb")]) == 2  # failed in calibration before
    assert "the model takes 3 channel(s) but 'synthetic' images have 1; the height and width may differ" in \
        capsys.readouterr().err
    # Shipped weights keep their classifier: another class count would export an untrained head.
    assert main(["export", "resnet20", "--num-classes", "5", "--out", str(tmp_path / "shipped")]) == 2
    assert "--num-classes 5: the shipped weights resnet20.fashion_mnist have 10 classes" in capsys.readouterr().err
