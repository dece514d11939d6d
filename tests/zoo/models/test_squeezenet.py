"""SqueezeNet: torchvision's published counts and geometry, the paper's bypasses, the conv classifier."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import numpy as np
import pytest
import tf_keras as keras


@pytest.mark.parametrize(
    "name, params",
    [
        ("squeezenet1_0", 1_248_424),  # torchvision.models.squeezenet1_0, weights meta num_params
        ("squeezenet1_1", 1_235_496),  # torchvision.models.squeezenet1_1, weights meta num_params
    ],
)
def test_published_trainable_params(name, params):
    assert zoo.model_info(name).trainable_params == params


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_torchvision_geometry(name):
    # ceil-mode pools: 224 -> 109 -> 54 -> 27 -> 13 (1.0) and 224 -> 111 -> 55 -> 27 -> 13 (1.1).
    model = zoo.create_model(name, include_top=False)
    assert model.output_shape == (None, 13, 13, 512)
    assert model.layers[-1].name == "fire9_concat"


def test_simple_bypass_adds_identity_where_channels_match():
    model = zoo.create_model("squeezenet1_1", input_shape=(32, 32, 3), bypass="simple")
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert adds == ["fire3_add", "fire5_add", "fire7_add", "fire9_add"]
    assert zoo.model_info("squeezenet1_0", bypass="simple").trainable_params == 1_248_424


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_complex_bypass_projects_the_other_fire_modules(name):
    model = zoo.create_model(name, input_shape=(32, 32, 3), bypass="complex")
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert adds == [f"fire{i}_add" for i in range(2, 10)]
    # 1x1 convolutions with bias into fire2, 4, 6 and 8 (96 or 64 -> 128, 128 -> 256, 256 -> 384, 384 -> 512).
    first = 96 if name == "squeezenet1_0" else 64
    extra = sum(cin * cout + cout for cin, cout in ((first, 128), (128, 256), (256, 384), (384, 512)))
    plain = zoo.model_info(name).trainable_params
    assert zoo.model_info(name, bypass="complex").trainable_params == plain + extra


def test_classifier():
    model = zoo.create_model("squeezenet1_1", input_shape=(28, 28, 1), num_classes=10)
    names = [layer.name for layer in model.layers]
    assert names[-5:] == ["head_dropout", "head_conv", "head_relu", "avg_pool", "predictions"]
    logits = model(np.random.rand(2, 28, 28, 1).astype("float32")).numpy()
    assert logits.shape == (2, 10) and np.all(logits >= 0)  # torchvision's ReLU before the pool
    probs = zoo.create_model("squeezenet1_1", input_shape=(28, 28, 1), num_classes=10,
                             classifier_activation="softmax")(np.random.rand(2, 28, 28, 1).astype("float32"))
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_small_stem():
    model = zoo.create_model("squeezenet1_0", input_shape=(32, 32, 3), include_top=False)
    conv1 = model.get_layer("conv1")
    assert conv1.kernel_size == (3, 3) and conv1.strides == (1, 1) and conv1.filters == 96
    assert model.output_shape == (None, 4, 4, 512)


def test_option_errors():
    with pytest.raises(TypeError, match="bypass"):
        zoo.create_model("squeezenet1_0", bypass="full")
    with pytest.raises(ValueError, match="dropout"):
        zoo.create_model("squeezenet1_0", input_shape=(32, 32, 3), dropout=1.5)
    with pytest.raises(ValueError, match="at least 7x7"):
        zoo.create_model("squeezenet1_0", input_shape=(6, 6, 3), stem="imagenet")
