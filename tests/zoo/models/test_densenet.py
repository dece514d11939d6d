"""DenseNet: torchvision's published counts, the CIFAR DenseNet-BC counts of the paper, the layout."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import pytest
import tf_keras as keras

from zoo import _registry as registry


@pytest.mark.parametrize(
    "name, params",
    [
        # torchvision.models.densenetXXX, DenseNetXXX_Weights.IMAGENET1K_V1.meta["num_params"];
        # equal to keras.applications.DenseNetXXX's trainable parameters.
        ("densenet121", 7_978_856),
        ("densenet169", 14_149_480),
        ("densenet201", 20_013_928),
        ("densenet161", 28_681_000),
    ],
)
def test_torchvision_trainable_params(name, params):
    assert zoo.model_info(name).trainable_params == params


@pytest.mark.parametrize(
    "name, millions",
    [
        # Huang et al. 2017, Table 2 (CIFAR-10, 10 classes), given to 0.1M.
        ("densenet_bc100_k12", 0.8),
        ("densenet_bc250_k24", 15.3),
        ("densenet_bc190_k40", 25.6),
        ("densenet40_k12", 1.0),
    ],
)
def test_paper_trainable_params(name, millions):
    info = zoo.model_info(name)
    assert info.input_shape == (32, 32, 3) and info.num_classes == 10
    assert round(info.trainable_params / 1e6, 1) == millions
    assert registry.get_spec(name).published.matches(info.trainable_params)


def _convs(model, kernel):
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (kernel, kernel)]


def test_densenet121_layout():
    model = zoo.create_model("densenet121", include_top=False)
    assert model.get_layer("pool1").output_shape == (None, 56, 56, 64)
    # Transitions halve the channels: 64 + 6 * 32 = 256 -> 128, 128 + 12 * 32 = 512 -> 256, 1024 -> 512.
    assert [model.get_layer(f"pool{i}_conv").filters for i in (2, 3, 4)] == [128, 256, 512]
    assert model.get_layer("pool4_pool").output_shape == (None, 7, 7, 512)
    assert model.output_shape == (None, 7, 7, 1024)
    assert model.get_layer("conv2_block1_1_conv").filters == 128  # bn_size * growth_rate
    assert len(_convs(model, 3)) == 6 + 12 + 24 + 16
    assert not any(layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert [layer.name for layer in model.layers][-2:] == ["bn", "relu"]
    assert zoo.create_model("densenet161", include_top=False, pooling="avg").output_shape == (None, 2208)


def test_densenet_bc100_layout():
    model = zoo.create_model("densenet_bc100_k12", include_top=False)
    # Stem of 2k = 24 channels; blocks of 16 layers: 24 + 192 = 216 -> 108, 300 -> 150, 342.
    stem = model.get_layer("conv1_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1) and stem.filters == 24
    assert [model.get_layer(f"pool{i}_conv").filters for i in (2, 3)] == [108, 150]
    assert model.output_shape == (None, 8, 8, 342)
    assert len(_convs(model, 3)) == 1 + 48  # stem + one 3x3 per dense layer: depth 1 + 2 * 48 + 2 + 1 = 100
    assert model.layers[2].name == "conv2_block1_0_bn"  # the stem is a bare conv: BN-ReLU open each layer


def test_densenet40_has_no_bottleneck_or_compression():
    model = zoo.create_model("densenet40_k12", include_top=False)
    assert not [layer for layer in _convs(model, 1) if "_block" in layer.name]
    assert [model.get_layer(f"pool{i}_conv").filters for i in (2, 3)] == [160, 304]
    assert model.output_shape == (None, 8, 8, 448)


def test_stems():
    imagenet = zoo.create_model("densenet_bc100_k12", input_shape=(224, 224, 3), include_top=False)
    assert imagenet.get_layer("conv1_conv").kernel_size == (7, 7)
    assert imagenet.get_layer("pool1").output_shape == (None, 56, 56, 24)
    small = zoo.create_model("densenet121", input_shape=(28, 28, 1), include_top=False)
    assert small.get_layer("conv1_conv").kernel_size == (3, 3)
    assert "pool1" not in {layer.name for layer in small.layers}
    assert small.output_shape == (None, 3, 3, 1024)  # 28 -> 14 -> 7 -> 3


def test_drop_rate_follows_every_conv_but_the_stem():
    model = zoo.create_model("densenet_bc100_k12", drop_rate=0.2)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 2 * 48 + 2 and all(layer.rate == 0.2 for layer in dropouts)
    assert zoo.model_info("densenet_bc100_k12", drop_rate=0.2).trainable_params == \
        zoo.model_info("densenet_bc100_k12").trainable_params


@pytest.mark.parametrize(
    "option, value",
    [("compression", 0.0), ("compression", 1.5), ("block_config", ()), ("block_config", (6, 0)),
     ("growth_rate", 0), ("bn_size", 0), ("drop_rate", 1.0), ("num_init_features", 0)],
)
def test_option_errors(option, value):
    with pytest.raises(ValueError, match=option):
        zoo.create_model("densenet121", input_shape=(32, 32, 3), **{option: value})
