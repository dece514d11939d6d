"""The registry's API: listing, lookup, option validation, cards and published parameter counts."""

import dataclasses
import json
from importlib import resources

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import _registry as registry

FAMILIES = {"alexnet", "vgg", "googlenet", "resnet", "nin", "wide_resnet", "resnext", "stochastic_depth",
            "densenet", "fractalnet", "squeezenet"}
# The variants the issue names; the registry may hold more.
REQUIRED = ["alexnet", "alexnet_2012", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
            "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20",
            "resnet32", "resnet44", "resnet56", "resnet110", "resnet50v2", "nin", "wide_resnet16_4",
            "wide_resnet28_10", "wide_resnet40_4", "resnext29_8x64d", "resnext50_32x4d",
            "stochastic_depth_resnet110", "densenet121", "densenet169", "densenet201", "densenet_bc100_k12",
            "squeezenet1_0", "squeezenet1_1"]


def test_every_family_and_required_variant_is_registered():
    assert {f.name for f in zoo.list_families()} >= FAMILIES
    missing = set(REQUIRED) - set(zoo.list_models())
    assert not missing
    assert any(n.startswith("fractalnet") for n in zoo.list_models())


def test_families_are_hashable_picklable_data():
    import pickle

    families = zoo.list_families()
    assert len(set(families)) == len(families)
    assert pickle.loads(pickle.dumps(families)) == families
    googlenet = next(f for f in families if f.name == "googlenet")
    assert dict(googlenet.pretrained_options) == {"aux_logits": False}
    with pytest.raises(ValueError, match=r"pretrained_options of family 'x' must be among its weight_free_options"):
        dataclasses.replace(googlenet, name="x", pretrained_options={"width_multiplier": 0.5})


def test_list_models_globs_exclude_and_natural_sort():
    assert zoo.list_models("resnet[0-9]*", exclude="*v2") == [
        "resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50", "resnet56", "resnet101",
        "resnet110", "resnet152"]
    assert zoo.list_models(["vgg1[16]*"], exclude=["*_bn"]) == ["vgg11", "vgg16"]
    assert zoo.list_models("no_such_*") == []
    assert "resnet20" in zoo.list_models(pretrained=True)  # what ships: tests/zoo/test_weights.py
    for call in (lambda: zoo.list_models(None), lambda: zoo.list_pretrained(None)):  # 'NoneType' is not iterable
        with pytest.raises(TypeError, match=r"include must be a glob pattern or a list of them \(str\); received None"):
            call()
    with pytest.raises(TypeError, match=r"exclude must be .*; received \['\*_bn', 3\]"):
        zoo.list_models(exclude=["*_bn", 3])


def test_unknown_name_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnet21'.*Close matches: .*resnet20"):
        zoo.create_model("resnet21")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.model_info("not_a_model_at_all")


def test_unknown_option_raises_and_lists_accepted():
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth for model 'resnet20'.*Accepted: block"):
        zoo.create_model("resnet20", depth=20)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(min_survival_probability="half"), "must be float"),
        (dict(stage_depths=3), r"must be tuple\[int, \.\.\.\]"),
        (dict(block="dense"), "must be 'basic' | 'bottleneck' | 'preact_bottleneck'"),
        (dict(stem_width=True), "must be int"),
    ],
)
def test_option_types_are_checked(options, message):
    with pytest.raises(TypeError, match=message):
        zoo.create_model("resnet20", **options)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(28, 28)), r"input_shape .* received \(28, 28\)"),
        (dict(input_shape=(28, 28, 0)), "positive ints"),
        (dict(num_classes=0), "num_classes must be a positive int; received 0"),
        (dict(pooling="mean"), "pooling must be one of"),
        (dict(classifier_activation="softmaxx"), "Keras activation name"),
        (dict(weights="/no/such/file.h5"), r"cannot load weights='/no/such/file.h5'.*Accepted: .*None, a path"),
    ],
)
def test_bad_arguments_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.create_model("resnet20", **kwargs)


def test_numpy_integers_are_accepted_and_other_numbers_name_their_type():
    model = zoo.create_model("resnet20", num_classes=np.int64(10), input_shape=tuple(np.array([28, 28, 1])),
                             stage_depths=(1, 1, 1))
    assert model.output_shape == (None, 10) and model.input_shape == (None, 28, 28, 1)
    assert zoo.model_info("resnet20", input_shape=(np.int32(28), 28, 1)).input_shape == (28, 28, 1)
    with pytest.raises(ValueError, match=r"num_classes must be a positive int; received 10.0 \(float64\)"):
        zoo.create_model("resnet20", num_classes=np.float64(10))
    with pytest.raises(ValueError, match=r"received True \(bool\)"):
        zoo.create_model("resnet20", num_classes=True)
    with pytest.raises(ValueError, match=r"received \(28.0, 28, 1\) \(a tuple of float, int, int\)"):
        zoo.create_model("resnet20", input_shape=(28.0, 28, 1))
    # Architecture options too, stored as Python's numbers (they go to the config and weights' metadata).
    wide = zoo.create_model("wide_resnet16_4", depth=np.int64(10), widen_factor=np.int32(1), dropout=np.float32(0.5),
                            input_shape=(28, 28, 1), num_classes=10)
    assert zoo.create_model("wide_resnet16_4", depth=10, widen_factor=1, dropout=0.5, input_shape=(28, 28, 1),
                            num_classes=10).count_params() == wide.count_params()
    options = registry._check_options(registry._MODELS["resnet20"], {"stage_depths": list(np.array([1, 2, 1]))})
    assert options == {"stage_depths": (1, 2, 1)} and type(options["stage_depths"][0]) is int
    with pytest.raises(TypeError, match=r"option 'stage_depths' .* received \(1.5, 1, 1\) \(a tuple of float"):
        zoo.create_model("resnet20", stage_depths=(1.5, 1, 1))


TINY = dict(input_shape=(28, 28, 1), stage_depths=(1, 1, 1))


def _assert_same_weights(model, reference):
    for layer in model.layers:
        for a, b in zip(layer.get_weights(), reference.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_checkpoint_loads_by_layer_name(tmp_path):
    full = zoo.create_model("resnet20", num_classes=10, **TINY)
    backbone = zoo.create_model("resnet20", include_top=False, **TINY)
    full.save_weights(str(tmp_path / "full"))
    backbone.save_weights(str(tmp_path / "backbone"))
    loaded = zoo.create_model("resnet20", weights=str(tmp_path / "full"), include_top=False, pooling="avg", **TINY)
    _assert_same_weights(loaded, full)  # a full model's checkpoint fills a backbone
    with pytest.raises(ValueError, match=r"backbone do not fit this 'resnet20' model \(model layers not in the file: "
                                         r"predictions\)\. Accepted: weights saved"):
        zoo.create_model("resnet20", weights=str(tmp_path / "backbone"), num_classes=10, **TINY)
    # A compiled model's checkpoint holds its optimizer's variables too (Adam's slots): not layers.
    full.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    full.fit(np.zeros((2, 28, 28, 1)), np.zeros(2), verbose=0)
    full.save_weights(str(tmp_path / "compiled"))
    _assert_same_weights(zoo.create_model("resnet20", weights=str(tmp_path / "compiled"), num_classes=10, **TINY),
                         full)
    # A SavedModel's variables are a checkpoint too (tf_keras' load_weights reads a SavedModel directory).
    full.save(str(tmp_path / "saved_model"))
    _assert_same_weights(zoo.create_model("resnet20", weights=str(tmp_path / "saved_model"), include_top=False,
                                          **TINY), full)
    # Two models with the same layer names in one checkpoint: which one is meant is not for the loader to guess.
    twins = tf.train.Checkpoint(net=full, ema=zoo.create_model("resnet20", num_classes=10, **TINY))
    with pytest.raises(ValueError, match=r"hold two variables named 'stem_conv/kernel' .*two models\? Accepted: "):
        zoo.create_model("resnet20", weights=twins.write(str(tmp_path / "twins")), num_classes=10, **TINY)
    # A checkpoint keys a functional model's variables by layer position: Keras itself restored GoogLeNet's
    # inception5b_branch1 from another layer's (1, 1, 512, 128) kernel once the auxiliary heads were gone.
    googlenet = zoo.create_model("googlenet", input_shape=(32, 32, 3), num_classes=10)
    googlenet.save_weights(str(tmp_path / "googlenet"))
    for options in ({"aux_logits": False}, {"include_top": False}):
        _assert_same_weights(zoo.create_model("googlenet", input_shape=(32, 32, 3), num_classes=10,
                                              weights=str(tmp_path / "googlenet"), **options), googlenet)


def test_an_h5_file_loads_by_layer_name(tmp_path):
    full = zoo.create_model("resnet20", num_classes=10, **TINY)
    full.save_weights(str(tmp_path / "full.h5"))
    zoo.create_model("resnet20", include_top=False, **TINY).save_weights(str(tmp_path / "backbone.h5"))
    loaded = zoo.create_model("resnet20", weights=str(tmp_path / "full.h5"), include_top=False, **TINY)
    _assert_same_weights(loaded, full)  # tf_keras' load by layer order refused this (another layer count)
    with pytest.raises(ValueError, match=r"backbone.h5 do not fit this 'resnet20' model \(model layers not in the "
                                         r"file: predictions\)"):
        zoo.create_model("resnet20", weights=str(tmp_path / "backbone.h5"), num_classes=10, **TINY)
    # A deeper model's file holds every layer of this backbone, and more: another architecture.
    zoo.create_model("resnet20", **dict(TINY, stage_depths=(2, 1, 1))).save_weights(str(tmp_path / "deeper.h5"))
    with pytest.raises(ValueError, match=r"\(file layers not in the model: stage1_block2_1_bn, stage1_block2_1_conv"):
        zoo.create_model("resnet20", weights=str(tmp_path / "deeper.h5"), include_top=False, **TINY)
    # A `.weights.h5` name gets Keras' newer HDF5 format (no layer names): Keras loads it.
    full.save_weights(str(tmp_path / "full.weights.h5"))
    _assert_same_weights(zoo.create_model("resnet20", weights=str(tmp_path / "full.weights.h5"), num_classes=10,
                                          **TINY), full)


def test_a_model_that_keras_cannot_build_is_named_with_its_options_and_shape():
    with pytest.raises(ValueError, match=r"^cannot build 'resnet20' at input_shape=\(8, 8, 1\) with stage_depths="
                                         r"\(1, 1, 1\), dropout=1\.5: Invalid value 1\.5 received for `rate`"):
        zoo.create_model("resnet20", input_shape=(8, 8, 1), stage_depths=(1, 1, 1), dropout=1.5)
    # It was a Keras traceback text about a "Negative dimension size" in an AvgPool node.
    with pytest.raises(ValueError, match=r"^cannot build 'densenet121' at input_shape=\(4, 4, 3\): the input shrinks "
                                         r"to nothing by layer 'pool4_pool'\. Accepted: a larger input_shape$"):
        zoo.create_model("densenet121", input_shape=(4, 4, 3))


def test_list_option_is_accepted_as_tuple():
    model = zoo.create_model("resnet20", stage_depths=[1, 1, 1], input_shape=(28, 28, 1), num_classes=3)
    assert model.output_shape == (None, 3)
    shape = zoo.create_model("resnet20", stage_depths=[1, 1, 1], input_shape=np.array([28, 28, 1])).input_shape
    assert shape == (None, 28, 28, 1)  # a NumPy array of a shape, as num_classes=np.int64(3) was already
    assert len([layer for layer in model.layers if layer.name.endswith("_add")]) == 3


def test_duplicate_registration_raises(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    resnet = registry._FAMILIES["resnet"]
    with pytest.raises(ValueError, match="'resnet20' is already registered"):
        resnet.register("resnet20", stage_depths=(3, 3, 3))
    with pytest.raises(ValueError, match="family 'resnet' is already registered"):
        registry.register_family("resnet", resnet.builder, paper="", year=2015, url="")
    with pytest.raises(ValueError, match="unknown option"):  # a typo in a registration fails at import
        resnet.register("resnet_typo", stage_depth=(1, 1))


def test_family_weight_declarations_are_checked():
    builder = next(f for f in zoo.list_families() if f.name == "resnet").builder
    with pytest.raises(ValueError, match=r"weight_free_options of family 'x' are not options of its builder: dropuot\. "
                                         r"Accepted: block, "):
        registry.Family(name="x", builder=builder, paper="", year=2015, url="", weight_free_options=("dropuot",))
    with pytest.raises(ValueError, match=r"classifier_layers of family 'x' must be among its head_layers"):
        registry.Family(name="x", builder=builder, paper="", year=2015, url="", classifier_layers=("head_conv",))


def test_registry_records_task_inputs_and_outputs():
    for family in zoo.list_families():
        assert family.task in registry.TASKS
        assert family.inputs and family.outputs
        assert family.paper and 2010 <= family.year <= 2020 and family.url.startswith("https://")


def test_model_info_card():
    info = zoo.model_info("resnet18")
    assert (info.family, info.task, info.year, info.default_input_shape) == ("resnet", "classification", 2015,
                                                                             (224, 224, 3))
    assert info.trainable_params == info.published_params == 11_689_512
    assert info.flops == 2 * info.macs and 1.8e9 < info.macs < 1.83e9  # torchvision: 1.81 GFLOPS (MACs)
    small = zoo.model_info("resnet18", input_shape=(32, 32, 3))
    assert small.input_shape == (32, 32, 3) and small.macs < info.macs
    with pytest.raises(dataclasses_frozen_error()):
        info.params = 1


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_shipped_cards_are_current(measured_cards):
    shipped = json.loads((resources.files("zoo") / registry.CARDS_PATH).read_text())
    assert shipped == measured_cards, "zoo/_cards.json is stale: run `make docs`"


def test_published_parameter_counts(measured_cards):
    """Each published count (torchvision, keras.applications or the paper's table, cited in the
    registration and the family's docstring) equals the zoo's trainable count, as measured now."""
    checked = []
    for name in zoo.list_models():
        published = registry.get_spec(name).published
        if published is not None:
            trainable = measured_cards[name]["trainable_params"]
            assert published.matches(trainable), (name, trainable, published)
            checked.append(name)
    assert {"resnet18", "resnet50", "vgg16", "densenet121", "squeezenet1_0", "resnext50_32x4d",
            "wide_resnet50_2", "alexnet"} <= set(checked)
