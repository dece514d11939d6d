"""Tests of the pretrained-weights registry (`zoo._weights`), loading through `zoo.create_model`, and publishing.

Every shipped weight is loaded and checked against its metadata: sha256 and size of the file, params
and FLOPs recomputed from the built model, and its predictions on the package's sample images.
Corruption tests work on a copy of the weights directory (the registry is pointed at it).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import zoo
from training import publish
from zoo import _weights
from zoo._docs import pretrained_markdown
from zoo._files import locked
from zoo._flops import count_macs
from zoo._registry import get_spec
from zoo._weights import PretrainedWeights, get_weights_info, list_pretrained, metadata_text, sample_images
from zoo.cli import main

REPO = Path(__file__).resolve().parents[2]
SHIPPED = list_pretrained()
FM = "resnet20.fashion_mnist"
FM_TEST_IMAGES = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.fixture
def registry_copy(tmp_path, monkeypatch):
    """A copy of the shipped weights directory that the registry reads instead."""
    copy = tmp_path / "weights"
    shutil.copytree(_weights.weights_dir(), copy)
    monkeypatch.setattr(_weights, "_DIR_OVERRIDE", str(copy))
    yield copy
    _weights._clear_cache()


def _rewrite(directory: Path, meta: PretrainedWeights) -> None:
    (directory / f"{meta.name}.json").write_text(metadata_text(meta))


# -- the registry ----------------------------------------------------------------------------------------


def test_what_ships():
    files = sorted(p.stem for p in _weights.weights_dir().glob("*.json"))
    assert SHIPPED == files and FM in SHIPPED
    assert zoo.list_models(pretrained=True) == zoo.list_models(sorted({n.split(".")[0] for n in files}))
    assert zoo.model_info("resnet20").pretrained == ("fashion_mnist",)
    assert get_weights_info("resnet20") is get_weights_info(FM)  # an arch names its default
    assert get_weights_info(FM).default


def test_every_family_ships_weights():
    shipped = {zoo.model_info(arch).family for arch in zoo.list_models(pretrained=True)}
    assert shipped == {family.name for family in zoo.list_families()}


def test_the_shipped_weights_stay_small_together():
    assert sum(get_weights_info(n).source.size_bytes for n in SHIPPED) <= 60_000_000


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_matches_its_metadata(name):
    meta = get_weights_info(name)
    path = _weights.weights_dir() / meta.source.file
    assert path.stat().st_size == meta.source.size_bytes <= 10_000_000
    assert _weights.sha256_file(path) == meta.source.sha256
    text = (_weights.weights_dir() / f"{name}.json").read_text()
    assert PretrainedWeights.from_dict(json.loads(text)) == meta
    assert metadata_text(PretrainedWeights.from_dict(meta.to_dict())) == text  # the JSON round-trips exactly
    assert meta.provenance.command.startswith(f"zoo train {meta.arch} ") and "--resume" not in meta.provenance.command
    assert meta.metrics.eval_command.startswith(f"zoo eval {meta.arch} --weights {name} ")
    assert meta.metrics.num_examples == 10_000 and len(meta.sample_predictions) == 100


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_predict_the_samples(name):
    meta = get_weights_info(name)
    model = zoo.create_model(meta.arch, weights=meta.tag)
    assert model.input_shape[1:] == meta.input.shape and model.output_shape == (None, meta.head.num_classes)
    # The metrics count the model as it was trained: a GoogLeNet's with its auxiliary heads.
    trained = zoo.create_model(meta.arch, weights=meta.tag, **({"aux_logits": True} if meta.arch == "googlenet" else {}))
    assert trained.count_params() == meta.metrics.params and 2 * count_macs(trained) == meta.metrics.flops
    images, labels = sample_images(meta.provenance.dataset)
    logits = zoo.strip_training_outputs(model)(meta.input.normalize(images), training=False).numpy()
    predictions = logits.argmax(-1)
    assert tuple(predictions.tolist()) == meta.sample_predictions
    assert (predictions == labels).mean() >= meta.metrics.top1 - 0.1  # 100 images: a loose check of the labels


def test_sample_images_are_the_first_ten_test_images_of_each_class():
    images, labels = sample_images("fashion_mnist")
    assert images.shape == (100, 28, 28, 1) and images.dtype == np.uint8
    assert labels.tolist() == [c for c in range(10) for _ in range(10)]
    if not FM_TEST_IMAGES.is_file():
        pytest.skip("the Fashion-MNIST test split (Debian dataset-fashion-mnist) is not installed")
    from training.data import read_idx

    test_images = read_idx(FM_TEST_IMAGES)
    test_labels = read_idx(FM_TEST_IMAGES.with_name("t10k-labels-idx1-ubyte.gz"))
    first = np.concatenate([np.flatnonzero(test_labels == c)[:10] for c in range(10)])
    np.testing.assert_array_equal(images[..., 0], test_images[first])
    with pytest.raises(ValueError, match=r"no sample images ship for dataset 'cifar10'. Accepted: fashion_mnist"):
        sample_images("cifar10")


def test_write_sample_images_writes_exactly_the_path_atomically(tmp_path):
    path = tmp_path / "digits_sample"  # NumPy would add ".npz" to a file name; not to a file object
    assert _weights.write_sample_images("digits", per_class=2, path=path) == path
    assert os.listdir(tmp_path) == ["digits_sample"]
    with np.load(path) as data:
        assert data["images"].shape == (20, 8, 8) and data["labels"].tolist() == [c for c in range(10) for _ in "ab"]


# -- the weights= forms -------------------------------------------------------------------------------


def test_default_tag_and_full_name_load_the_same_weights():
    by_default = zoo.create_model("resnet20", weights="DEFAULT")
    by_tag = zoo.create_model("resnet20", weights="fashion_mnist", classifier_activation="softmax")
    by_name = zoo.create_model("resnet20", weights=FM, input_shape=(28, 28, 1), num_classes=10)
    for model in (by_tag, by_name):
        for a, b in zip(by_default.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    x = np.zeros((1, 28, 28, 1), np.float32)
    np.testing.assert_allclose(by_tag(x).numpy().sum(), 1.0, rtol=1e-5)  # softmax over the loaded logits


def test_include_top_false_loads_the_backbone():
    full = zoo.create_model("resnet20", weights="DEFAULT")
    backbone = zoo.create_model("resnet20", weights="DEFAULT", include_top=False, pooling="avg")
    assert "predictions" not in {layer.name for layer in backbone.layers} and backbone.output_shape == (None, 64)
    for layer in backbone.layers:
        for a, b in zip(layer.get_weights(), full.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    features = full.get_layer("avg_pool").output
    import tf_keras as keras

    x = sample_images()[0][:4]
    x = get_weights_info(FM).input.normalize(x)
    np.testing.assert_allclose(backbone(x).numpy(), keras.Model(full.input, features)(x).numpy(), atol=1e-5)


def test_another_number_of_classes_loads_the_backbone_and_a_fresh_head():
    full = zoo.create_model("resnet20", weights="DEFAULT")
    five = zoo.create_model("resnet20", weights="DEFAULT", num_classes=5)
    assert five.output_shape == (None, 5) and five.get_layer("predictions").weights[0].shape == (64, 5)
    for layer in five.layers:
        if layer.name != "predictions":
            for a, b in zip(layer.get_weights(), full.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    assert not np.allclose(five.get_layer("predictions").get_weights()[0], 0)  # initialized, not zeros


def _file_weights(meta: PretrainedWeights) -> dict:
    return _weights._read_h5(_weights.weights_path(meta), meta.name)


def _assert_loaded(model, saved: dict, *, skip=()) -> None:
    """Every layer of ``model`` with weights, but ``skip``, holds the file's arrays (in save_weights' order)."""
    loaded = [layer for layer in model.layers if layer.weights and layer.name not in skip]
    assert loaded
    for layer in loaded:
        for variable, (_, array) in zip(layer.trainable_weights + layer.non_trainable_weights, saved[layer.name],
                                        strict=True):
            np.testing.assert_array_equal(variable.numpy(), array, err_msg=f"{model.name}: {layer.name}")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_entry_loads_under_a_new_head_and_as_a_backbone(name):
    meta = get_weights_info(name)
    family = get_spec(meta.arch).family
    five = zoo.create_model(meta.arch, weights=meta.tag, num_classes=5)
    outputs = five.output_shape if isinstance(five.output_shape, list) else [five.output_shape]
    assert set(outputs) == {(None, 5)}
    fresh = [layer for layer in five.layers if layer.name in family.classifier_layers]
    assert fresh and all(layer.weights[0].shape[-1] == 5 for layer in fresh)
    saved = _file_weights(meta)
    _assert_loaded(five, saved, skip=family.classifier_layers)
    backbone = zoo.create_model(meta.arch, weights=meta.tag, include_top=False, pooling="avg")
    assert not {layer.name for layer in backbone.layers} & set(family.head_layers)
    _assert_loaded(backbone, saved)


# Another value for each family's weight-free options (`Family.weight_free_options`).
OTHER_VALUES = {"dropout": 0.1, "drop_rate": 0.1, "aux_dropout": 0.5, "aux_logits": False,
                "min_survival_probability": 0.8, "local_drop_rate": 0.1, "global_drop_ratio": 0.25,
                "dropout_rates": (0.0, 0.1, 0.2, 0.3, 0.4)}


@pytest.mark.parametrize("name", SHIPPED)
def test_weight_free_options_take_any_value_with_pretrained_weights(name):
    meta = get_weights_info(name)
    free = get_spec(meta.arch).family.weight_free_options
    assert free and set(free) <= set(OTHER_VALUES)
    model = zoo.create_model(meta.arch, weights=meta.tag, **{key: OTHER_VALUES[key] for key in free})
    _assert_loaded(model, _file_weights(meta))


def test_fine_tuning_options_apply_with_pretrained_weights():
    resnet = zoo.create_model("resnet20", weights="DEFAULT", dropout=0.2)
    assert resnet.get_layer("head_dropout").rate == 0.2
    googlenet = zoo.create_model("googlenet", weights="DEFAULT", num_classes=5)  # pretrained: no auxiliary heads
    assert googlenet.output_names == ["predictions"] and googlenet.output_shape == (None, 5)
    with_heads = zoo.create_model("googlenet", weights="DEFAULT", aux_logits=True)  # to fine-tune with them
    assert with_heads.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    _assert_loaded(with_heads, _file_weights(get_weights_info("googlenet")))
    assert len(zoo.create_model("googlenet", input_shape=(32, 32, 3), num_classes=10).outputs) == 3  # untrained
    _assert_loaded(googlenet, _file_weights(get_weights_info("googlenet")), skip=("predictions",))
    with pytest.raises(ValueError, match=r"received width_multiplier=0.5 \(the weights have width_multiplier=0.25\)"
                                         r".*options that change no weights \(aux_logits, dropout, aux_dropout\)"):
        zoo.create_model("googlenet", weights="DEFAULT", width_multiplier=0.5)


@pytest.mark.parametrize("arch, stem_layer", [("resnet20", "stem_conv"), ("squeezenet1_1", "conv1")])
def test_pretrained_weights_keep_their_stem_at_larger_inputs(arch, stem_layer):
    meta = get_weights_info(arch)  # trained at 28x28, where stem="auto" is the small-input stem
    model = zoo.create_model(arch, weights="DEFAULT", input_shape=(64, 64, 1))
    native = zoo.create_model(arch, weights="DEFAULT")
    assert model.input_shape == (None, 64, 64, 1) and model.count_params() == native.count_params()
    assert model.get_layer(stem_layer).strides == native.get_layer(stem_layer).strides == (1, 1)
    _assert_loaded(model, _file_weights(meta))
    assert zoo.create_model(arch, weights="DEFAULT", input_shape=(64, 64, 1), stem="small").count_params() == (
        model.count_params())
    with pytest.raises(ValueError, match=r"received stem='imagenet' \(the weights have stem='small'\)"):
        zoo.create_model(arch, weights="DEFAULT", input_shape=(64, 64, 1), stem="imagenet")


def test_unknown_or_foreign_names_list_what_is_accepted():
    with pytest.raises(ValueError, match=r"no pretrained weights 'resnet20.imagenet'.*Tags of 'resnet20': DEFAULT, "
                                         r"'fashion_mnist' / 'resnet20.fashion_mnist'"):
        zoo.create_model("resnet20", weights="resnet20.imagenet")
    with pytest.raises(ValueError, match=r"cannot load weights='cifar10' for 'resnet20'. Accepted: 'DEFAULT' "
                                         r"\(fashion_mnist\), 'fashion_mnist', None, a path"):
        zoo.create_model("resnet20", weights="cifar10")
    with pytest.raises(ValueError, match=r"weights='resnet20.fashion_mnist' are for 'resnet20', not 'resnet32'"):
        zoo.create_model("resnet32", weights=FM)
    with pytest.raises(ValueError, match=r"'resnet32' ships no pretrained weights.*Models with pretrained weights: "
                                         r".*resnet20"):
        zoo.create_model("resnet32", weights="DEFAULT")
    with pytest.raises(ValueError, match=r"no pretrained weights 'vgg16.imagenet'.*Accepted: .*resnet20.fashion_mnist"):
        get_weights_info("vgg16.imagenet")


def test_conflicting_options_raise():
    with pytest.raises(ValueError, match=r"trained with the variant's defaults; received stage_depths=\(2, 2, 2\) "
                                         r"\(the weights have stage_depths=\(3, 3, 3\)\)"):
        zoo.create_model("resnet20", weights="DEFAULT", stage_depths=(2, 2, 2))
    zoo.create_model("resnet20", weights="DEFAULT", stage_depths=(3, 3, 3))  # agreeing is fine


def test_fractalnets_columns_each_read_the_images_and_are_each_adapted():
    name = "fractalnet20.fashion_mnist"
    gray, rgb = (zoo.create_model("fractalnet20", weights=name, input_shape=(28, 28, c)) for c in (1, 3))
    x = get_weights_info(name).input.normalize(sample_images()[0][:8])
    np.testing.assert_allclose(rgb(np.repeat(x, 3, axis=-1), training=False)[0].numpy(),
                               gray(x, training=False)[0].numpy(), atol=1e-4)


def test_grayscale_weights_load_for_rgb_images_with_the_first_convolution_adapted():
    """As timm's in_chans: a gray image repeated over RGB gets the pretrained response (it was refused)."""
    gray = zoo.create_model("resnet20", weights="DEFAULT")
    rgb = zoo.create_model("resnet20", weights="DEFAULT", input_shape=(32, 32, 3), num_classes=4)
    kernel = gray.get_layer("stem_conv").kernel.numpy()
    np.testing.assert_allclose(rgb.get_layer("stem_conv").kernel.numpy(), np.repeat(kernel, 3, axis=2) / 3, rtol=1e-6)
    for layer in gray.layers:  # everything but the stem and the fresh 4-class classifier as it was
        if layer.weights and layer.name not in ("stem_conv", "predictions"):
            for a, b in zip(layer.get_weights(), rgb.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
    same = zoo.create_model("resnet20", weights="DEFAULT", input_shape=(28, 28, 3))
    images, labels = sample_images()
    x = get_weights_info(FM).input.normalize(images)
    np.testing.assert_allclose(same(np.repeat(x, 3, axis=-1), training=False).numpy(),
                               gray(x, training=False).numpy(), atol=1e-4)


def test_rgb_weights_load_into_a_grayscale_model_summed_over_the_channels(tmp_path):
    rgb = zoo.create_model("resnet20", input_shape=(16, 16, 3), num_classes=3, stage_depths=(1, 1, 1))
    rgb.save_weights(tmp_path / "rgb.h5")
    gray = zoo.create_model("resnet20", input_shape=(16, 16, 1), num_classes=3, stage_depths=(1, 1, 1),
                            weights=str(tmp_path / "rgb.h5"))
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(gray(x, training=False).numpy(),
                               rgb(np.repeat(x, 3, axis=-1), training=False).numpy(), atol=1e-4)
    two = zoo.create_model("resnet20", input_shape=(16, 16, 2), num_classes=3, stage_depths=(1, 1, 1),
                           weights=str(tmp_path / "rgb.h5"))  # 3 -> 2: channels repeated, cut, scaled by 3/2
    kernel = rgb.get_layer("stem_conv").kernel.numpy()
    np.testing.assert_allclose(two.get_layer("stem_conv").kernel.numpy(), kernel[:, :, :2] * 1.5, rtol=1e-6)


# -- corrupt files never load ---------------------------------------------------------------------------


def test_a_changed_byte_fails_the_sha256(registry_copy):
    path = registry_copy / f"{FM}.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"has sha256 [0-9a-f]{64}; its metadata accepts only [0-9a-f]{64}"):
        zoo.create_model("resnet20", weights="DEFAULT")


def test_a_truncated_file_fails_before_reading(registry_copy):
    path = registry_copy / f"{FM}.h5"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])
    with pytest.raises(ValueError, match=rf"has {size // 2:,} bytes; its metadata accepts only {size:,}"):
        zoo.create_model("resnet20", weights="fashion_mnist")


def test_a_file_of_another_architecture_does_not_load(registry_copy):
    other = zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10, stage_depths=(2, 2, 2))
    path = registry_copy / f"{FM}.h5"
    other.save_weights(str(path))
    meta = get_weights_info(FM)
    _rewrite(registry_copy, dataclasses.replace(meta, source=_weights.WeightsSource(
        file=path.name, sha256=_weights.sha256_file(path), size_bytes=path.stat().st_size)))
    _weights._clear_cache()
    with pytest.raises(ValueError, match=r"do not fit this 'resnet20' model \(model layers not in the file: "
                                         r"stage1_block3_1_conv, stage1_block3_1_bn"):
        zoo.create_model("resnet20", weights="DEFAULT")


def test_the_registry_checks_its_metadata(registry_copy):
    meta = get_weights_info(FM)
    again = dataclasses.replace(meta, tag="again", source=dataclasses.replace(meta.source, file="resnet20.again.h5"))
    _rewrite(registry_copy, again)
    shutil.copyfile(registry_copy / f"{FM}.h5", registry_copy / "resnet20.again.h5")
    _weights._clear_cache()
    with pytest.raises(ValueError, match=r"'resnet20' must have exactly one default tag; received 2 "
                                         r"\(again, fashion_mnist\)"):
        list_pretrained()
    (registry_copy / "resnet20.again.json").unlink()
    _rewrite(registry_copy, dataclasses.replace(again, arch="resnet21", tag="x"))
    _weights._clear_cache()
    with pytest.raises(ValueError, match=r"resnet21.x.json is invalid: unknown model 'resnet21'"):
        list_pretrained()


# -- publishing -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished one-epoch `zoo train` run on scikit-learn's digits (a one-block-per-stage ResNet)."""
    out = tmp_path_factory.mktemp("publish") / "run"
    argv = ["train", "resnet20", "--dataset", "digits", "-o", "stage_depths=(1,1,1)", "--input-shape", "8", "8", "1",
            "--epochs", "1", "--batch-size", "64", "--out", str(out)]
    assert main(argv) == 0
    return out


def test_publish_records_a_run_that_then_loads(tiny_run, tmp_path, monkeypatch, capsys):
    registry = tmp_path / "registry"
    assert main(["publish", str(tiny_run), "--tag", "digits", "--weights-dir", str(registry), "--notes", "tiny"]) == 0
    assert "published resnet20.digits (default): test top-1" in capsys.readouterr().out
    meta = PretrainedWeights.from_dict(json.loads((registry / "resnet20.digits.json").read_text()))
    recorded = json.loads((tiny_run / "eval.json").read_text())
    assert meta.metrics.top1 == pytest.approx(recorded["accuracy"], abs=0.001) and meta.metrics.num_examples == 360
    assert meta.provenance.options == (("stage_depths", (1, 1, 1)),) and meta.input.shape == (8, 8, 1)
    assert meta.provenance.command == (tiny_run / "command.txt").read_text().strip()
    assert meta.metrics.eval_command == "zoo eval resnet20 --weights resnet20.digits --dataset digits"
    assert meta.published_top1 is None and meta.sample_predictions == () and meta.notes == "tiny"
    assert meta.source.sha256 == _weights.sha256_file(registry / "resnet20.digits.h5")

    monkeypatch.setattr(_weights, "_DIR_OVERRIDE", str(registry))
    try:
        model = zoo.create_model("resnet20", weights="digits")  # options and input shape from the metadata
        assert model.input_shape == (None, 8, 8, 1) and model.count_params() == meta.metrics.params
        with pytest.raises(ValueError, match="exist in .*; pass overwrite=True"):
            publish.publish_run(tiny_run, tag="digits", out_dir=registry)
    finally:
        _weights._clear_cache()


def test_publish_refuses_an_eval_json_the_weights_contradict(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    evaluation = json.loads((run / "eval.json").read_text())
    evaluation["accuracy"] += 0.002
    (run / "eval.json").write_text(json.dumps(evaluation))
    assert main(["publish", str(run), "--tag", "digits", "--weights-dir", str(tmp_path / "registry")]) == 2
    err = capsys.readouterr().err
    assert "re-evaluating final_weights.h5 on the full test split gives" in err and "Not published" in err
    assert not (tmp_path / "registry").exists()
    (run / "final_weights.h5").unlink()
    assert main(["publish", str(run), "--tag", "digits"]) == 2
    assert "has no final_weights.h5" in capsys.readouterr().err


def test_a_failed_publish_leaves_the_registry_as_it_was(tiny_run, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    publish.publish_run(tiny_run, tag="digits", out_dir=registry)
    before = {p.name: p.read_bytes() for p in registry.iterdir()}
    # A second run whose weights differ but score the same: one constant more on every logit.
    run = tmp_path / "run2"
    shutil.copytree(tiny_run, run)
    model = zoo.create_model("resnet20", weights=str(run / "final_weights.h5"), input_shape=(8, 8, 1),
                             num_classes=10, stage_depths=(1, 1, 1))
    kernel, bias = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([kernel, bias + 1.0])
    model.save_weights(str(run / "final_weights.h5"))

    def fail(*args, **kwargs):
        raise RuntimeError("simulated failure")

    with monkeypatch.context() as patch:  # fails after the evaluation, before any file is written
        patch.setattr(publish, "predict_samples", fail)
        with pytest.raises(RuntimeError, match="simulated failure"):
            publish.publish_run(run, tag="digits", out_dir=registry, overwrite=True)
    assert {p.name: p.read_bytes() for p in registry.iterdir()} == before

    real_write = _weights.write_bytes

    def fail_on_json(path, data):
        if ".json" in Path(path).name:
            raise RuntimeError("simulated failure")
        real_write(path, data)

    with monkeypatch.context() as patch:  # fails while staging the files: the new .h5 is staged by then
        patch.setattr(_weights, "write_bytes", fail_on_json)
        for tag in ("digits", "newer"):  # an overwrite, and a new default that would demote 'digits'
            with pytest.raises(RuntimeError, match="simulated failure"):
                publish.publish_run(run, tag=tag, default=True, out_dir=registry, overwrite=True)
            assert {p.name: p.read_bytes() for p in registry.iterdir()} == before

    monkeypatch.setattr(_weights, "_DIR_OVERRIDE", str(registry))
    try:
        assert zoo.create_model("resnet20", weights="digits").count_params() > 0  # sha256 and all still agree
        newer = publish.publish_run(run, tag="newer", default=True, out_dir=registry)
        assert newer.default and not get_weights_info("resnet20.digits").default
        assert get_weights_info("resnet20") == newer
    finally:
        _weights._clear_cache()


KILLED_PUBLISH = """
import os, sys
from training import publish

run, registry, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
real_replace, calls = os.replace, []

def replace(src, dst):  # a hard kill before the kill_at-th rename: no cleanup, no exception handlers
    if len(calls) == kill_at:
        os._exit(9)
    calls.append(dst)
    real_replace(src, dst)

os.replace = replace
publish.publish_run(run, tag="newer", default=True, out_dir=registry)
"""


# A new default replaces three files (its .h5 and .json, the old default's .json). Its os.replace calls: the two
# staged JSON files' atomic writes (the .h5 is copied), the journal's, then the three renames.
@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_a_publish_killed_at_any_point_leaves_a_consistent_registry(tiny_run, tmp_path, monkeypatch, kill_at):
    """Killed between its renames, a publish left two defaults, or metadata whose sha256 was not its file's;
    now the next read finishes a publish killed after its journal, and ignores one killed before."""
    registry = tmp_path / "registry"
    publish.publish_run(tiny_run, tag="digits", out_dir=registry)
    killed = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(tiny_run), str(registry), str(kill_at)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr[-2000:]
    committed = kill_at > 2
    assert (registry / _weights.JOURNAL).exists() == committed
    monkeypatch.setattr(_weights, "_DIR_OVERRIDE", str(registry))
    try:
        _weights._clear_cache()
        assert get_weights_info("resnet20").tag == ("newer" if committed else "digits")
        assert not (registry / _weights.JOURNAL).exists()
        zoo.create_model("resnet20", weights="DEFAULT")  # its sha256 is its file's
        if not committed:  # the next publish clears what the killed one staged
            assert list(registry.glob(".*.staged"))
            live = registry / f".resnet20.other.json.{os.getpid()}.staged"  # a publish still running: kept
            live.write_bytes(b"{}")
            publish.publish_run(tiny_run, tag="newer", default=True, out_dir=registry)
            assert get_weights_info("resnet20").tag == "newer"
            assert live.exists()
            live.unlink()
        assert not list(registry.glob(".*"))
    finally:
        _weights._clear_cache()


def test_a_publish_killed_during_another_ones_evaluation_leaves_one_default(tiny_run, tmp_path, monkeypatch):
    """The killed publish's journal, written while this one evaluated, is finished before the entries are read:
    read first, they showed the old default, and both new ones became defaults."""
    registry = tmp_path / "registry"
    publish.publish_run(tiny_run, tag="digits", out_dir=registry)
    from training import runs

    evaluate = runs.evaluate_weights

    def evaluate_while_another_publish_is_killed(*args, **kwargs):
        killed = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(tiny_run), str(registry), "3"],
                                capture_output=True, text=True, timeout=300)  # after its journal, its first rename
        assert killed.returncode == 9 and (registry / _weights.JOURNAL).exists(), killed.stderr[-2000:]
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(publish, "evaluate_weights", evaluate_while_another_publish_is_killed)
    publish.publish_run(tiny_run, tag="latest", default=True, out_dir=registry)
    entries = {json.loads(p.read_text())["tag"]: json.loads(p.read_text())["default"] for p in registry.glob("*.json")}
    assert entries == {"digits": False, "newer": False, "latest": True}
    assert not list(registry.glob(".*"))


CONCURRENT_PUBLISH = """
import sys
from training import publish

publish.publish_run(sys.argv[1], tag=sys.argv[3], default=True, out_dir=sys.argv[2])
"""


def _lock_waiters(pids) -> set[int]:
    """Which of ``pids`` wait for a lock (the "->" lines of /proc/locks)."""
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and int(fields[5]) in pids:
            waiting.add(int(fields[5]))
    return waiting


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks to see a process wait")
def test_two_publishes_at_once_take_turns_and_leave_one_default(tiny_run, tmp_path, monkeypatch):
    """Two publishes of new defaults at once each read the old default, and both became defaults."""
    registry = tmp_path / "registry"
    publish.publish_run(tiny_run, tag="digits", out_dir=registry)
    with locked(registry):  # both reach the registry while another publish holds it
        children = [subprocess.Popen([sys.executable, "-c", CONCURRENT_PUBLISH, str(tiny_run), str(registry), tag],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for tag in ("first", "second")]
        pids = {child.pid for child in children}
        deadline = time.monotonic() + 240
        while _lock_waiters(pids) != pids and time.monotonic() < deadline and all(c.poll() is None for c in children):
            time.sleep(0.2)
        blocked = _lock_waiters(pids)
    for child in children:
        _, err = child.communicate(timeout=240)
        assert child.returncode == 0, err[-2000:]
    assert blocked == pids  # each waited for the lock, after its evaluation
    entries = {json.loads(p.read_text())["tag"]: json.loads(p.read_text())["default"] for p in registry.glob("*.json")}
    assert sorted(entries) == ["digits", "first", "second"] and sum(entries.values()) == 1
    assert not list(registry.glob(".*"))


def test_a_registry_read_waits_for_a_publish_to_finish_its_renames(tiny_run, tmp_path):
    """Read between a publish's renames, the new default was in place before the old one was demoted."""
    registry = tmp_path / "registry"
    publish.publish_run(tiny_run, tag="digits", out_dir=registry)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from zoo._files import locked\n"
                               "with locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(3)", str(registry)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # a publish holds the registry
        _weights._read_registry.cache_clear()
        start = time.monotonic()
        entries = _weights._read_registry(str(registry))
        assert time.monotonic() - start > 1.5 and list(entries) == ["resnet20.digits"]  # it waited
    finally:
        holder.wait(timeout=60)
        _weights._clear_cache()


# -- docs and the command line -----------------------------------------------------------------------------


def test_repo_pretrained_docs_are_current():
    current = (REPO / "docs" / "pretrained.md").read_text(encoding="utf-8")
    assert current == pretrained_markdown(), "docs/pretrained.md is stale: run `make docs` and commit the result"
    meta = get_weights_info(FM)
    for text in (meta.provenance.command, meta.metrics.eval_command, f"{meta.metrics.top1:.2%}", "94.9%"):
        assert text in current


def test_docs_check_fails_on_a_stale_pretrained_page(tmp_path, capsys):
    out = tmp_path / "pretrained.md"
    out.write_text("# old\n")
    assert main(["docs", "--page", "pretrained", "--out", str(out), "--check"]) == 1
    assert "is stale (it differs from the generated pretrained weights page)" in capsys.readouterr().err


@pytest.mark.skipif(not FM_TEST_IMAGES.is_file(), reason="the Fashion-MNIST test split is not installed")
def test_eval_accepts_pretrained_names(capsys):
    assert main(["eval", "resnet20", "--weights", FM, "--dataset", "fashion_mnist", "--limit", "200"]) == 0
    assert "resnet20 on fashion_mnist test: accuracy" in capsys.readouterr().out
    assert main(["eval", "resnet20", "--weights", "nope", "--dataset", "fashion_mnist"]) == 2
    assert "nor pretrained weights of resnet20 (DEFAULT, fashion_mnist)" in capsys.readouterr().err


def test_normalize_gives_each_channel_grayscale_weights_statistics_and_refuses_other_shapes():
    from zoo._weights import WeightsInput

    info = get_weights_info(FM).input
    gray = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert info.normalize(gray).shape == (2, 28, 28, 1)
    rgb = info.normalize(np.repeat(gray[..., None], 3, axis=-1))  # for a model built for RGB from these weights
    np.testing.assert_array_equal(rgb, np.repeat(info.normalize(gray), 3, axis=-1))
    color = WeightsInput(shape=(8, 8, 3), mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match=r"images must be \[N, H, W, 3\] \(or \[N, H, W\] for one channel\): the "
                                         r"weights take 3 channel\(s\); received shape \(2, 8, 8, 1\)"):
        color.normalize(np.zeros((2, 8, 8, 1), np.uint8))  # an RGB mean broadcast over gray images
    with pytest.raises(ValueError, match=r"received shape \(28, 28\)"):
        info.normalize(gray[0])  # one image: [1, H, W]
