"""Pruning, clustering, quantization-aware training and low rank on tiny models, fine-tuned by the shared loop."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import _data
import zoo
from export import cluster, low_rank, prune, quantize, tflite
from training import Recipe

RECIPE = Recipe(optimizer="adam", learning_rate=1e-3, epochs=1, batch_size=16, checkpoint_every=3)


def _accuracy(model, n=128):
    images, labels = _data.pixels(n, seed=7)
    return float(np.mean(model.predict(_data.normalized(images), verbose=0).argmax(-1) == labels))


@pytest.fixture(scope="module")
def trained():
    return _data.trained_model()


# -- pruning ------------------------------------------------------------------------------------------


def test_polynomial_pruning_reaches_its_target_and_strips_to_plain_layers(trained, tmp_path):
    wrapped = prune.prune(trained, sparsity=0.75, schedule="polynomial", end_step=4, frequency=1,
                          per_layer={"stage1_*": 0.5}, skip=("predictions",))
    tuned = prune.finetune_pruned(wrapped, _data.train_data, recipe=RECIPE, out_dir=tmp_path, verbose=0)
    stripped = prune.strip(tuned)
    assert not any("PruneLowMagnitude" in type(l).__name__ for l in stripped.layers)
    report = prune.sparsity(stripped)
    assert report["stage3_block1_1_conv"] == pytest.approx(0.75, abs=0.01)
    assert report["stage1_block1_1_conv"] == pytest.approx(0.5, abs=0.02)
    assert report["predictions"] == 0.0
    assert prune.sparsity(trained)["total"] == 0.0  # the source model is untouched


def test_a_finished_pruning_run_resumed_returns_the_same_pruned_weights(trained, tmp_path):
    # Its last checkpoint must come after UpdatePruningStep re-masks the kernels at the epoch's end:
    # the optimizer's last step moves the masked weights off zero.
    def run():
        wrapped = prune.prune(trained, sparsity=0.75, schedule="constant", end_step=4, frequency=1)
        return prune.strip(prune.finetune_pruned(wrapped, _data.train_data, recipe=RECIPE, out_dir=tmp_path,
                                                 verbose=0))

    first, resumed = run(), run()
    assert prune.sparsity(first)["total"] == pytest.approx(0.75, abs=0.02)
    for a, b in zip(first.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_constant_pruning_of_grouped_convolutions(tmp_path):
    model = zoo.create_model("resnext29_8x64d", input_shape=(12, 12, 1), num_classes=4, cardinality=4,
                             bottleneck_width=4, stage_widths=(16, 16, 16), stage_depths=(1, 1, 1))
    assert "stage1_block1_2_conv" in prune.prunable_layers(model)  # a GroupedConv2D
    wrapped = prune.prune(model, sparsity=0.5, schedule="constant", end_step=10, frequency=1)
    stripped = prune.strip(prune.finetune_pruned(wrapped, _data.train_data, recipe=RECIPE, out_dir=tmp_path,
                                                 verbose=0))
    assert prune.sparsity(stripped)["stage1_block1_2_conv"] == pytest.approx(0.5, abs=0.02)


def test_two_by_four_sparsity_zeroes_two_of_every_four_input_weights(trained, tmp_path):
    wrapped = prune.prune(trained, m_by_n=(2, 4), skip=("stem_conv",))  # one input channel: no block of 4
    stripped = prune.strip(prune.finetune_pruned(wrapped, _data.train_data, recipe=RECIPE, out_dir=tmp_path,
                                                 verbose=0))
    kernel = stripped.get_layer("stage2_block1_2_conv").kernel.numpy()  # (3, 3, in, out), in divisible by 4
    blocks = np.moveaxis(kernel, 2, -1).reshape(-1, 4)
    assert np.all(np.sum(blocks == 0, axis=1) >= 2)


def test_dropout_before_a_pruned_layer_is_lowered_by_the_square_root_of_what_is_kept():
    def model():
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, name="fc1")(inputs)
        x = keras.layers.Dropout(0.5, name="drop1")(x)
        x = keras.layers.ReLU()(x)  # the path to the next kernel may pass through activations
        x = keras.layers.Dense(16, name="fc2")(x)
        x = keras.layers.Dropout(0.4, name="drop2")(x)
        return keras.Model(inputs, keras.layers.Dense(4, name="out")(x))

    wrapped = prune.prune(model(), sparsity=0.75, per_layer={"out": 0.0})
    changed = prune.scale_dropout(wrapped, {"fc1": 0.75, "fc2": 0.96, "out": 0.0})
    assert changed == {"drop1": (0.5, pytest.approx(0.5 * 0.2))}  # drop1 feeds fc2 (4% kept); out is dense
    assert [l.rate for l in prune.strip(wrapped).layers if isinstance(l, keras.layers.Dropout)] == [
        pytest.approx(0.1), 0.4]
    # the same from prune itself, with each layer's own target
    lowered = prune.prune(model(), sparsity=0.75, per_layer={"fc2": 0.96, "out": 0.0}, lower_dropout=True)
    assert [l.rate for l in lowered.layers if isinstance(l, keras.layers.Dropout)] == [pytest.approx(0.1), 0.4]


def test_sensitivity_scores_each_layer_pruned_alone_and_restores_the_model():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    labels = np.argmax(model.predict(x, verbose=0), axis=-1)  # the intact model scores 100%
    before = [w.copy() for w in model.get_weights()]
    curves = prune.sensitivity(model, x, labels, sparsities=(0.5, 0.9))
    assert list(curves) == ["(none)", "hidden", "out"] and curves["(none)"] == {0.0: 1.0}
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # restored
    kernel = before[2]  # "out": keep the largest 10% of its 24 weights, as the curve did
    pruned = np.where(np.abs(kernel) < np.quantile(np.abs(kernel), 0.9), 0.0, kernel)
    expected = np.argmax(np.maximum(x @ before[0] + before[1], 0) @ pruned + before[3], axis=-1)
    assert curves["out"][0.9] == pytest.approx(np.mean(expected == labels))
    assert curves["out"][0.9] < 1.0


def test_pruning_errors_name_what_is_accepted(trained):
    with pytest.raises(ValueError, match="unknown pruning schedule 'cubic'; accepted: constant, polynomial"):
        prune.prune(trained, schedule="cubic")
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\); received 1.0"):
        prune.prune(trained, sparsity=1.0)
    with pytest.raises(ValueError, match=r"pattern .fc\*. matches no prunable layer.*predictions"):
        prune.prune(trained, per_layer={"fc*": 0.5})


# -- clustering ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["kmeans++", "linear", "density", "random"])
def test_clustering_leaves_at_most_k_values_per_kernel(trained, init):
    stripped = cluster.strip(cluster.cluster(trained, clusters=4, init=init))
    values = cluster.distinct_values(stripped)
    assert max(values.values()) <= 4 and values["predictions"] <= 4


def test_sparsity_preserving_clustering_keeps_the_zeros(trained, tmp_path):
    pruned = prune.strip(prune.finetune_pruned(prune.prune(trained, sparsity=0.6, schedule="constant", end_step=10,
                                                           frequency=1),
                                               _data.train_data, recipe=RECIPE, out_dir=tmp_path / "p", verbose=0))
    zeros = pruned.get_layer("stage3_block1_2_conv").kernel.numpy() == 0
    wrapped = cluster.cluster(pruned, clusters=8, preserve_sparsity=True)
    clustered = cluster.strip(cluster.finetune_clustered(wrapped, _data.train_data, recipe=RECIPE,
                                                         out_dir=tmp_path / "c", verbose=0))
    kernel = clustered.get_layer("stage3_block1_2_conv").kernel.numpy()
    assert np.all(kernel[zeros] == 0)
    assert np.unique(kernel).size <= 8


def test_clustering_grouped_convolutions_and_errors():
    model = zoo.create_model("alexnet_2012", input_shape=(12, 12, 1), num_classes=4, widths=(8, 8, 8, 8, 8),
                             fc_units=16)
    stripped = cluster.strip(cluster.cluster(model, clusters=3))
    assert cluster.distinct_values(stripped)["conv2"] <= 3  # a GroupedConv2D (two towers)
    with pytest.raises(ValueError, match="unknown centroid initialization 'kmeans'; accepted: kmeans\\+\\+, linear"):
        cluster.cluster(model, init="kmeans")
    with pytest.raises(ValueError, match="clusters must be an int >= 2; received 1"):
        cluster.cluster(model, clusters=1)


# -- quantization-aware training ----------------------------------------------------------------------


def test_qat_finetunes_and_converts_to_int8_close_to_the_float_model(trained, tmp_path):
    qat = quantize.finetune_quantized(quantize.quantize_aware(trained), _data.train_data,
                                      recipe=Recipe(optimizer="adam", learning_rate=1e-4, epochs=1, batch_size=16),
                                      out_dir=tmp_path, verbose=0)
    flat = tflite.convert(qat, quantize="int8")  # no representative data: the ranges were learned
    reference = tflite.with_preprocessing(trained, mean=_data.MEAN, std=_data.STD)
    converted = tflite.TFLiteModel(tflite.convert(tflite.with_preprocessing(qat, mean=_data.MEAN, std=_data.STD),
                                                  quantize="int8"))
    images, labels = _data.pixels(128, seed=7)
    report = tflite.check_parity(converted, reference, images, labels, max_accuracy_drop=2.0)
    assert report.accuracy > 0.9 and len(flat) > 0


def test_calibrated_ranges_make_an_untrained_qat_model_compute_the_float_function(trained):
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    x = _data.normalized(_data.pixels(128, seed=7)[0])
    expected = trained.predict(x, verbose=0)
    qat = quantize.quantize_aware(trained)
    # TFMOT's starting ranges: the input's is [0, 0], so every image gives the same output
    assert np.ptp(qat.predict(x, verbose=0), axis=0).max() < 1e-6
    originals = quant_ops.MovingAvgQuantize, quant_ops.LastValueQuantize, quant_ops.AllValuesQuantize
    assert quantize.calibrate_ranges(qat, x) is qat
    assert (quant_ops.MovingAvgQuantize, quant_ops.LastValueQuantize, quant_ops.AllValuesQuantize) == originals
    after = qat.predict(x, verbose=0)
    assert np.mean(after.argmax(-1) == expected.argmax(-1)) >= 0.95
    assert np.abs(after - expected).max() < 0.02 * np.ptp(expected)  # int8 rounding of the logits (range ~15)
    ranges = {w.name: float(w.numpy()) for w in qat.weights
              if w.name.startswith("quantize_layer") and w.name.endswith(("_min:0", "_max:0"))}
    assert sorted(ranges.values()) == pytest.approx(sorted([min(float(x.min()), 0.0), max(float(x.max()), 0.0)]))


@pytest.mark.parametrize("name,options", [
    ("alexnet_2012", dict(widths=(8, 8, 8, 8, 8), fc_units=16)),  # LRN, grouped convolutions
    ("stochastic_depth_resnet110", dict(stage_depths=(1, 1, 1))),  # StochasticDepth, zero-padding shortcut
    ("fractalnet20", dict(channels=(8, 8, 8, 8, 8))),  # FractalJoin, the drop-path sampler
    ("densenet_bc100_k12", dict(block_config=(1, 1, 1))),  # pre-activation BN after concatenation
])
def test_zoo_layers_quantize_and_convert(name, options):
    model = zoo.create_model(name, input_shape=(12, 12, 1), num_classes=4, **options)
    qat = quantize.quantize_aware(model)
    images, _ = _data.pixels(4)
    # calibrated, then one training step's worth of ranges, as fine-tuning leaves them: with TFMOT's own
    # config an AveragePooling2D (DenseNet's transitions) got an output range unlike its input's, which
    # TFLite rejects
    quantize.calibrate_ranges(qat, _data.normalized(images))
    qat(_data.normalized(images), training=True)
    flat = tflite.convert(qat, quantize="int8", representative_images=_data.normalized(images))
    assert tflite.TFLiteModel(flat).predict(_data.normalized(images)).shape == (4, 4)
    # Integer from input to output but for LRN (TFLite has no integer kernel for it): no other float
    # island between DEQUANTIZE and QUANTIZE (without the calibration data a batch norm that follows
    # no convolution stayed a float MUL and ADD); AlexNet's grouped convolutions are int8 too
    counts = tflite.op_counts(flat)
    assert counts["DEQUANTIZE"] == 1 + counts.get("LOCAL_RESPONSE_NORMALIZATION", 0)
    if name == "densenet_bc100_k12":  # its pre-activation batch norms are depthwise convolutions, not MUL + ADD
        assert "MUL" not in counts and counts["DEPTHWISE_CONV_2D"] == 6


def test_a_batch_norm_after_no_convolution_becomes_a_depthwise_convolution_of_the_same_function():
    rng = np.random.default_rng(0)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.BatchNormalization(name="folds")(keras.layers.Conv2D(3, 3, padding="same")(inputs))
    x = keras.layers.Concatenate()([keras.layers.ReLU()(x), inputs])
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="preact", epsilon=0.01)(x))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 1)(x))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.BatchNormalization(name="flat")(x)))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape) if i in (0, 3) else rng.normal(0, 1, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    # A stripped pruned model: its layers are the model's own objects, with a node in each model
    rewritten = quantize.batch_norms_as_depthwise(prune.strip(prune.prune(model, sparsity=0.5)))
    kinds = {layer.name: type(layer).__name__ for layer in rewritten.layers}
    # folded into its convolution by TFMOT / over a 2-D tensor: kept
    assert kinds["preact"] == "DepthwiseConv2D" and kinds["folds"] == kinds["flat"] == "BatchNormalization"
    x = rng.normal(0, 1, (8, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(rewritten.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    # In QAT it is one int8 op with the ReLU fused in, as TFLite runs it
    qat = quantize.quantize_aware(model)
    assert type(qat.get_layer("quant_preact").layer).__name__ == "DepthwiseConv2D"
    assert qat.get_layer("quant_preact").layer.get_config()["activation"]["config"]["activation"] == "relu"


def test_a_calibrated_quantization_aware_resnext_converts_its_grouped_convolutions_to_int8():
    # Uncalibrated (TFMOT's [-6, 6] ranges after a few steps), a real ResNeXt's int8 grouped convolutions
    # agreed with its QAT model on 24% of the test images; calibrated, on 99.25% (the benchmark).
    model = zoo.create_model("resnext29_8x64d", input_shape=(12, 12, 1), num_classes=4, stage_widths=(16, 32, 64),
                             cardinality=4, bottleneck_width=4)
    x = _data.normalized(_data.pixels(64)[0])
    qat = quantize.calibrate_ranges(quantize.quantize_aware(model), x)
    flat = tflite.convert(qat, quantize="int8", representative_images=x)
    assert tflite.op_counts(flat)["DEQUANTIZE"] == 1  # integer throughout, grouped convolutions included
    expected = qat.predict(x, verbose=0)
    np.testing.assert_allclose(tflite.TFLiteModel(flat).predict(x), expected, atol=0.05 * np.ptp(expected))


def test_a_quantization_aware_fractal_join_converts_without_clipping_its_sum():
    from zoo.models.fractalnet.fractalnet import FractalJoin

    inputs = keras.Input((4, 4, 1))
    branches = [keras.layers.Conv2D(2, 1, activation="relu", kernel_initializer="ones", name=f"c{i}")(inputs)
                for i in range(2)]
    model = keras.Model(inputs, keras.layers.Flatten()(FractalJoin(columns=(0, 1), drop_rate=0.0)(branches)))
    x = np.random.default_rng(0).uniform(0, 5, (64, 4, 4, 1)).astype(np.float32)
    qat = quantize.quantize_aware(model)
    for _ in range(10):
        qat(x, training=True)  # ranges: each branch and the mean about [0, 5], their sum [0, 10]
    converted = tflite.TFLiteModel(tflite.convert(qat, quantize="int8"))
    # The sum used to be requantized to the mean's range: the mean came out clipped at 2.5
    np.testing.assert_allclose(converted.predict(x), qat.predict(x, verbose=0), atol=0.1)


class _Custom(keras.layers.Layer):
    def call(self, x):
        return tf.sin(x)


def test_a_layer_without_a_quantization_rule_is_named():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    model = keras.Model(inputs, _Custom(name="sine")(x))
    with pytest.raises(quantize.UnsupportedLayerError, match=r"sine \(.*_Custom\).*QuantizeConfig"):
        quantize.quantize_aware(model)
    with pytest.raises(ValueError, match="unknown preserve 'zeros'; accepted: none, sparsity, clusters"):
        quantize.quantize_aware(_data.model(), preserve="zeros")
    # A TF op in a functional model (a TFOpLambda layer, whose config node is flat): it was "TypeError: 'int'
    # object is not subscriptable" in reading the graph.
    relu6 = keras.Model(inputs, tf.nn.relu6(keras.layers.Conv2D(2, 3, name="conv6")(inputs)))
    with pytest.raises(quantize.UnsupportedLayerError, match=r"tf\.nn\.relu6 \(.*TFOpLambda\)"):
        quantize.quantize_aware(relu6)


@pytest.mark.parametrize("preserve", ["sparsity", "clusters", "sparsity_clusters"])
def test_collaborative_qat_keeps_zeros_and_shared_values(trained, preserve):
    model = trained
    if "sparsity" in preserve:
        model = prune.strip(prune.prune(model, sparsity=0.5, schedule="constant", end_step=10))
        model.get_layer("stage2_block1_2_conv").kernel.assign(
            tf.where(tf.abs(model.get_layer("stage2_block1_2_conv").kernel) < 0.02, 0.0,
                     model.get_layer("stage2_block1_2_conv").kernel))
    if "clusters" in preserve:
        model = cluster.strip(cluster.cluster(model, clusters=8, preserve_sparsity="sparsity" in preserve))
    qat = quantize.quantize_aware(model, preserve=preserve)
    assert len(tflite.convert(qat, quantize="int8")) > 0


# -- low rank -----------------------------------------------------------------------------------------


def _rank_k(shape, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(shape[0], k)) @ rng.normal(size=(k, shape[1]))).astype(np.float32) / k


def test_low_rank_is_exact_on_low_rank_kernels():
    inputs = keras.Input((10, 10, 6))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2D(12, 1, name="pointwise")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(40, activation="relu", name="fc")(x)
    model = keras.Model(inputs, outputs)
    conv = _rank_k((3 * 6, 3 * 16), 2).reshape(3, 6, 3, 16).transpose(0, 2, 1, 3)  # (kh, cin) x (kw, cout) rank 2
    model.get_layer("conv").kernel.assign(conv)
    model.get_layer("pointwise").kernel.assign(_rank_k((16, 12), 3).reshape(1, 1, 16, 12))
    model.get_layer("fc").kernel.assign(_rank_k((300, 40), 4))
    x = np.random.default_rng(1).normal(size=(3, 10, 10, 6)).astype(np.float32)
    small, report = low_rank.low_rank(model, energy=0.999999)
    assert {(f.layer, f.kind, f.rank) for f in report} == {("conv", "separable", 2), ("pointwise", "conv1x1", 3),
                                                           ("fc", "dense", 4)}
    assert small.count_params() < model.count_params()
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    assert small.get_layer("conv_lowrank").kernel.shape == (3, 1, 6, 2)


def test_low_rank_by_rank_on_a_zoo_model_and_its_errors():
    model = zoo.create_model("alexnet_2012", input_shape=(28, 28, 1), num_classes=10, widths=(48, 128, 192, 192, 128),
                             fc_units=256)
    small, report = low_rank.low_rank(model, rank=16, layers=("fc6", "fc7"))
    assert [f.layer for f in report] == ["fc6", "fc7"]
    assert small.count_params() == model.count_params() - sum(f.params_before - f.params_after for f in report)
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        low_rank.low_rank(model, rank=4, energy=0.9)
    with pytest.raises(ValueError, match="pattern 'fc9' matches no Dense or Conv2D layer"):
        low_rank.low_rank(model, rank=4, layers=("fc9",))


def test_fuse_relu_keeps_the_function_and_qat_then_quantizes_those_kernels():
    model = zoo.create_model("alexnet_2012", input_shape=(12, 12, 1), num_classes=4, widths=(8, 8, 8, 8, 8),
                             fc_units=16)
    fused = quantize.fuse_relu(model)
    assert {"conv1_relu", "conv3_relu", "fc6_relu", "fc7_relu"}.isdisjoint(l.name for l in fused.layers)
    assert "conv2_relu" in [l.name for l in fused.layers]  # after a GroupedConv2D: left alone
    images, _ = _data.pixels(4)
    x = _data.normalized(images)
    np.testing.assert_allclose(fused.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    configs = {l.name: type(l.quantize_config).__name__ for l in quantize.quantize_aware(model).layers
               if hasattr(l, "quantize_config")}
    assert configs["quant_conv1"] == "Default8BitConvQuantizeConfig"  # not TFMOT's no-op for Conv2D -> ReLU


def test_pruning_preserving_qat_keeps_the_zeros_of_every_kernel(tmp_path):
    model = zoo.create_model("alexnet_2012", input_shape=(12, 12, 1), num_classes=4, widths=(16, 16, 16, 16, 16),
                             fc_units=32)
    pruned = prune.strip(prune.prune(model, sparsity=0.8, schedule="constant", end_step=10))
    for layer in pruned.layers:  # prune now: magnitude masks as TFMOT computes them at its first step
        if layer.name in prune.prunable_layers(pruned):
            k = layer.kernel.numpy()
            k[np.abs(k) < np.quantile(np.abs(k), 0.8)] = 0
            layer.kernel.assign(k)
    qat = quantize.finetune_quantized(quantize.quantize_aware(pruned, preserve="sparsity"), _data.train_data,
                                      recipe=RECIPE, out_dir=tmp_path, verbose=0)
    kernels = {l.name: w.numpy() for l in qat.layers for w in l.weights if w.name.endswith("/kernel:0")}
    assert set(kernels) >= {"quant_conv1", "quant_conv2", "quant_fc6"}  # Conv2D, GroupedConv2D, Dense
    for name, kernel in kernels.items():
        assert np.mean(kernel == 0) >= 0.79, name


# -- what every transform accepts -----------------------------------------------------------------------


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.flatten, self.dense = keras.layers.Flatten(), keras.layers.Dense(_data.CLASSES)

    def call(self, inputs):
        return self.dense(self.flatten(inputs))


_TRANSFORMS = {
    "pruning": lambda m: prune.prune(m, sparsity=0.5),
    "clustering": lambda m: cluster.cluster(m, clusters=4),
    "quantization-aware training": lambda m: quantize.quantize_aware(m),
    "batch_norms_as_depthwise": quantize.batch_norms_as_depthwise,
    "fuse_relu": quantize.fuse_relu,
    "low_rank": lambda m: low_rank.low_rank(m, rank=1)[0],
}


@pytest.mark.parametrize("what", _TRANSFORMS)
def test_every_transform_takes_a_sequential_model_and_names_what_it_refuses(what):
    sequential = keras.Sequential([keras.Input(_data.SHAPE), keras.layers.Conv2D(8, 3),
                                   keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.Flatten(),
                                   keras.layers.Dense(_data.CLASSES)])
    images, _ = _data.pixels(2)
    out = _TRANSFORMS[what](sequential)
    assert out.output_shape == (None, _data.CLASSES) and out.predict(_data.normalized(images), verbose=0).shape == (
        2, _data.CLASSES)
    subclassed = _Subclassed()
    subclassed(_data.normalized(images))
    with pytest.raises(ValueError, match=f"{what} needs a functional tf_keras model .*received .*_Subclassed, a "
                                         "subclassed model"):
        _TRANSFORMS[what](subclassed)
    with pytest.raises(ValueError, match="a Sequential model without an input"):
        _TRANSFORMS[what](keras.Sequential([keras.layers.Dense(2)]))


def test_clustering_with_nothing_to_cluster_is_refused(trained):
    with pytest.raises(ValueError, match="nothing to cluster in .*; received skip=\\('\\*',\\)"):
        cluster.cluster(trained, skip=("*",))


@pytest.mark.parametrize("relu_layer", [False, True])
def test_a_separable_convolution_is_split_by_tfmot_and_converts_to_int8(relu_layer):
    # It was refused as a layer without a quantization rule, although TFMOT's layout transform replaces it
    # with a depthwise and a pointwise convolution before wrapping. Followed by a ReLU layer, the pointwise
    # one got TFMOT's no-op config (its kernel trained unquantized) until fuse_relu folded the ReLU in.
    keras.utils.set_random_seed(3)
    inputs = keras.Input(_data.SHAPE)
    if relu_layer:
        x = keras.layers.ReLU()(keras.layers.SeparableConv2D(8, 3, name="sep")(inputs))
    else:
        x = keras.layers.SeparableConv2D(8, 3, activation="relu", name="sep")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(_data.CLASSES, name="predictions")(x))
    x = _data.normalized(_data.pixels(64, seed=7)[0])
    expected = model.predict(x, verbose=0)
    qat = quantize.calibrate_ranges(quantize.quantize_aware(model), x)
    assert [type(layer.layer).__name__ for layer in qat.layers[2:4]] == ["DepthwiseConv2D", "Conv2D"]
    assert any("kernel_min" in w.name for w in qat.layers[3].weights)  # the pointwise kernel is quantized
    assert np.abs(qat.predict(x, verbose=0) - expected).max() < 0.05 * np.ptp(expected)  # the weights came along
    counts = tflite.op_counts(tflite.convert(qat, quantize="int8", representative_images=x))
    assert counts["DEPTHWISE_CONV_2D"] == 1 and counts["CONV_2D"] == 1 and counts["DEQUANTIZE"] == 1
