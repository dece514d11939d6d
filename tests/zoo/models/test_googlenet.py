"""GoogLeNet: torchvision's counts and geometry, the paper's 5x5 branch, the auxiliary heads."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from zoo.layers import AdaptiveAveragePooling2D
from zoo.models._common import _axis_ceil_padding as _ceil_pool_padding


def test_torchvision_trainable_params():
    # torchvision.models.googlenet: 6,624,904 in GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"]
    # (aux_logits=False); googlenet(aux_logits=True) adds aux1 (3,188,968) and aux2 (3,191,016).
    assert zoo.model_info("googlenet", aux_logits=False, branch3_kernel=3).trainable_params == 6_624_904
    assert zoo.model_info("googlenet", branch3_kernel=3).trainable_params == 13_004_888


def test_paper_default_trainable_params():
    # The paper's 5x5 kernels in branch 3: each inception block adds 16 * reduce * out weights.
    extra = sum(16 * red * out for red, out in [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64), (32, 64),
                                                (32, 128), (32, 128), (48, 128)])
    assert zoo.model_info("googlenet", aux_logits=False).trainable_params == 6_624_904 + extra == 7_005_832
    assert zoo.model_info("googlenet").trainable_params == 13_004_888 + extra == 13_385_816
    assert zoo.create_model("googlenet").get_layer("inception3a_branch3b").kernel_size == (5, 5)
    model = zoo.create_model("googlenet", input_shape=(32, 32, 3), branch3_kernel=3)
    assert model.get_layer("inception3a_branch3b").kernel_size == (3, 3)


def test_torchvision_geometry_at_224():
    model = zoo.create_model("googlenet", aux_logits=False, branch3_kernel=3)
    shapes = {n: model.get_layer(n).output_shape[1:] for n in
              ("conv1", "maxpool1", "maxpool2", "inception3b_concat", "maxpool3", "maxpool4", "inception5b_concat")}
    assert shapes == {
        "conv1": (112, 112, 64),
        "maxpool1": (56, 56, 64),
        "maxpool2": (28, 28, 192),
        "inception3b_concat": (28, 28, 480),
        "maxpool3": (14, 14, 480),
        "maxpool4": (7, 7, 832),
        "inception5b_concat": (7, 7, 1024),
    }
    assert model.get_layer("conv1_bn").epsilon == 1e-3
    assert [layer.name for layer in model.layers][-3:] == ["avg_pool", "head_dropout", "predictions"]
    assert model.get_layer("head_dropout").rate == 0.2


@pytest.mark.parametrize("size, pool, stride, expected", [
    (112, 3, 2, 56), (56, 3, 2, 28), (14, 2, 2, 7), (7, 2, 2, 4), (7, 3, 2, 3), (33, 3, 2, 16), (1, 2, 2, 1),
])
def test_max_pools_use_torch_ceil_mode_sizes(size, pool, stride, expected):
    padded = size + _ceil_pool_padding(size, pool, stride)
    assert (padded - pool) // stride + 1 == expected
    # PyTorch: ceil((size - pool) / stride) + 1, minus one if the last window starts past the input.
    out = math.ceil((size - pool) / stride) + 1
    assert expected == (out - 1 if (out - 1) * stride >= size else out)


def test_auxiliary_heads_are_extra_outputs():
    model = zoo.create_model("googlenet", input_shape=(28, 28, 1), num_classes=10)
    assert model.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    assert model.get_layer("aux1_pool").output_shape == (None, 4, 4, 512)  # 14x14 after the small stem
    assert model.get_layer("aux2_fc1").input_shape == (None, 2048)
    assert model.get_layer("aux1_dropout").rate == 0.7
    x = tf.random.stateless_normal((2, 28, 28, 1), seed=(1, 2))
    deploy = zoo.strip_training_outputs(model)
    assert deploy.output_names == ["predictions"]
    assert not any(layer.name.startswith("aux") for layer in deploy.layers)
    np.testing.assert_allclose(deploy(x).numpy(), model(x)[0].numpy(), rtol=1e-6)

    plain = zoo.create_model("googlenet", input_shape=(28, 28, 1), num_classes=10, aux_logits=False)
    assert plain.output_shape == (None, 10)
    features = zoo.create_model("googlenet", input_shape=(28, 28, 1), include_top=False, pooling="avg")
    assert features.output_shape == (None, 1024)
    assert not any(layer.name.startswith("aux") for layer in features.layers)


def test_small_stem():
    model = zoo.create_model("googlenet", input_shape=(32, 32, 3), num_classes=10)
    stem = model.get_layer("stem")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1) and stem.filters == 192
    names = {layer.name for layer in model.layers}
    assert not names & {"conv1", "maxpool1", "maxpool2"}
    assert model.get_layer("inception3a_concat").output_shape == (None, 32, 32, 256)
    assert model.get_layer("inception5b_concat").output_shape == (None, 8, 8, 1024)


def test_adaptive_average_pooling_matches_torch_bins():
    x = np.random.default_rng(0).normal(size=(2, 14, 9, 3)).astype("float32")
    out = AdaptiveAveragePooling2D((4, 3))(x).numpy()

    def bins(n, m):  # torch.nn.functional.adaptive_avg_pool2d
        return [(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]

    expected = np.stack([
        np.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in bins(9, 3)], axis=1)
        for r0, r1 in bins(14, 4)
    ], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # Smaller inputs are repeated: 2x2 -> 4x4.
    small = AdaptiveAveragePooling2D(4)(x[:, :2, :2]).numpy()
    np.testing.assert_allclose(small, np.repeat(np.repeat(x[:, :2, :2], 2, axis=1), 2, axis=2), rtol=1e-6)


def test_adaptive_average_pooling_config():
    layer = AdaptiveAveragePooling2D((4, 2), name="pool")
    clone = AdaptiveAveragePooling2D.from_config(layer.get_config())
    assert clone.output_size == (4, 2) and clone.name == "pool"
    assert keras.saving.get_registered_object("zoo>AdaptiveAveragePooling2D") is AdaptiveAveragePooling2D
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAveragePooling2D(0)


def test_option_errors():
    with pytest.raises(TypeError, match="branch3_kernel"):
        zoo.create_model("googlenet", branch3_kernel=7)
    with pytest.raises(ValueError, match="dropout"):
        zoo.create_model("googlenet", input_shape=(32, 32, 3), dropout=1.0)
    with pytest.raises(ValueError, match="aux_dropout"):
        zoo.create_model("googlenet", input_shape=(32, 32, 3), aux_dropout=-0.1)
