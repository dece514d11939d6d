"""VGG: torchvision's published counts, batch norm, the CIFAR-style small layout and adaptive pooling."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import pytest
import tensorflow as tf


def _symbolic(name, **kwargs):
    """Builds in a scratch graph, where a 138M-parameter VGG allocates no weights."""
    with tf.Graph().as_default():
        return zoo.create_model(name, **kwargs)


# torchvision.models.vgg*, weights meta num_params (excludes BN running statistics).
@pytest.mark.parametrize(
    "name, params",
    [
        ("vgg11", 132_863_336),
        ("vgg11_bn", 132_868_840),
        ("vgg13", 133_047_848),
        ("vgg13_bn", 133_053_736),
        ("vgg16", 138_357_544),
        ("vgg16_bn", 138_365_992),
        ("vgg19", 143_667_240),
        ("vgg19_bn", 143_678_248),
    ],
)
def test_published_trainable_params(name, params):
    assert zoo.model_info(name).trainable_params == params


def test_batch_norm_follows_every_conv():
    model = zoo.create_model("vgg11_bn", input_shape=(32, 32, 3), num_classes=10)
    names = [layer.name for layer in model.layers]
    convs = [n for n in names if n.startswith("block") and n.endswith(("_conv1", "_conv2"))]
    assert len(convs) == 8
    for c in convs:
        assert names.index(c) + 1 == names.index(f"{c}_bn") == names.index(f"{c}_relu") - 1
        assert model.get_layer(c).use_bias  # torchvision keeps the conv bias with BN
    assert not any(layer.name.endswith("_bn") for layer in _symbolic("vgg11", input_shape=(32, 32, 3)).layers)


def test_small_layout():
    model = zoo.create_model("vgg16", input_shape=(28, 28, 1), num_classes=10)
    assert model.get_layer("block5_pool").output_shape == (None, 1, 1, 512)
    assert all(model.get_layer(f"block{b}_pool").padding == "same" for b in range(1, 6))
    assert tuple(model.get_layer("fc1").kernel.shape) == (512, 512)
    assert "fc2" not in [layer.name for layer in model.layers]
    # 14,714,688 in the convolutions (as ImageNet VGG-16) + fc1 512 * 512 + 512 + predictions 512 * 1000 + 1000.
    assert zoo.model_info("vgg16", input_shape=(32, 32, 3)).trainable_params == 14_714_688 + 262_656 + 513_000


@pytest.mark.parametrize("shape", [(64, 64, 3), (300, 300, 3)])
def test_adaptive_pool_keeps_fc1_at_25088_inputs(shape):
    model = _symbolic("vgg11", input_shape=shape)
    assert model.get_layer("adaptive_pool").output_shape == (None, 7, 7, 512)
    assert tuple(model.get_layer("fc1").kernel.shape) == (25088, 4096)
    assert "adaptive_pool" not in [layer.name for layer in _symbolic("vgg11").layers]


def test_option_errors():
    with pytest.raises(ValueError, match="at least 32x32"):
        zoo.create_model("vgg11", input_shape=(31, 31, 3), stem="imagenet")
    with pytest.raises(ValueError, match="equal length"):
        zoo.create_model("vgg11", input_shape=(32, 32, 3), block_depths=(1, 1, 2))
    with pytest.raises(ValueError, match="dropout"):
        zoo.create_model("vgg11", input_shape=(32, 32, 3), dropout=-0.1)
