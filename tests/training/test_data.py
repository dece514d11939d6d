"""training.data and training.augment: sources, splits, determinism for resume, augmentation.

No test reaches the network: every path that could call TFDS has `training.data._tfds_load` patched.
"""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from training import augment as augment_lib
from training import data
from training.augment import Augment, get_augment
from training.data import DatasetInfo, load_dataset, read_idx
from _fashion import make_fashion_dir, write_idx

DEBIAN_TRAIN = os.path.join(data.DEBIAN_FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")


def collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture
def no_system_sources(monkeypatch, tmp_path):
    """No ZOO_DATA_DIR, no Debian files, and a TFDS that fails offline (records its calls)."""
    calls = []

    def offline(name, split, data_dir):
        calls.append((name, split, data_dir))
        raise ConnectionError("network disabled in tests")

    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "no-debian"))
    monkeypatch.setattr(data, "_tfds_load", offline)
    data._fashion_from_tfds.cache_clear()  # a split another test "loaded" through TFDS must not answer here
    yield calls
    data._fashion_from_tfds.cache_clear()


# -- IDX ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)
    write_idx(tmp_path / "a", images, compress=compress)
    write_idx(tmp_path / "b", floats, compress=compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), images)
    out = read_idx(tmp_path / "b")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, floats)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match=r"shape \(5,\) \(13 bytes\), but the file has 11 bytes"):
        read_idx(tmp_path / "short")


# -- fashion_mnist sources --------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_from_data_dir(tmp_path, no_system_sources, compress):
    arrays = make_fashion_dir(tmp_path / "fm", compress=compress)
    ds, info = load_dataset("fashion_mnist", "test", data_dir=tmp_path / "fm", batch_size=8)
    assert isinstance(info, DatasetInfo)
    assert info.source == str(tmp_path / "fm")
    assert info.num_examples == 20 and info.num_classes == 10 and info.image_shape == (28, 28, 1)
    assert info.class_names[0] == "T-shirt/top" and info.class_names[9] == "Ankle boot"
    assert (info.mean, info.std) == (data.FASHION_MNIST_MEAN, data.FASHION_MNIST_STD)
    x, y = collect(ds)
    images, labels = arrays["t10k"]
    assert x.dtype == np.float32 and y.dtype == np.int32
    expected = (images[..., None] / 255.0 - data.FASHION_MNIST_MEAN[0]) / data.FASHION_MNIST_STD[0]
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)  # test split: not shuffled
    np.testing.assert_array_equal(y, labels)
    assert not no_system_sources  # TFDS never consulted


def test_fashion_mnist_from_env_subfolder_and_order(tmp_path, monkeypatch, no_system_sources):
    make_fashion_dir(tmp_path / "root" / "fashion_mnist", compress=True, n_train=30)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "root"))
    _, info = load_dataset("fashion_mnist", "train")
    assert info.source == str(tmp_path / "root" / "fashion_mnist") and info.num_examples == 30
    # An explicit data_dir comes first; an empty one falls through to ZOO_DATA_DIR.
    make_fashion_dir(tmp_path / "explicit", n_train=40)
    assert load_dataset("fashion_mnist", "train", data_dir=tmp_path / "explicit")[1].num_examples == 40
    (tmp_path / "empty").mkdir()
    assert load_dataset("fashion_mnist", "train", data_dir=tmp_path / "empty")[1].num_examples == 30


def test_fashion_mnist_debian_then_tfds(tmp_path, monkeypatch, no_system_sources):
    make_fashion_dir(tmp_path / "deb", compress=True, n_test=12)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))
    assert load_dataset("fashion_mnist", "test")[1].source == f"debian:{tmp_path / 'deb'}"

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "none"))
    fake = np.zeros((6, 28, 28, 1), np.uint8), np.arange(6) % 10, data.FASHION_MNIST_CLASSES
    monkeypatch.setattr(data, "_tfds_load", lambda name, split, data_dir: fake)
    ds, info = load_dataset("fashion_mnist", "test", batch_size=4)
    assert info.source == "tfds:fashion_mnist" and info.num_examples == 6 and len(ds) == 2


def test_fashion_mnist_is_read_and_converted_once_for_all_epochs(tmp_path, no_system_sources):
    make_fashion_dir(tmp_path / "fm")
    hits = data._as_tensors.cache_info().hits
    for epoch in range(3):  # the loop loads the split again every epoch
        load_dataset("fashion_mnist", "train", data_dir=tmp_path / "fm", epoch=epoch)
    assert data._as_tensors.cache_info().hits == hits + 2
    make_fashion_dir(tmp_path / "fm", n_train=30, seed=1)  # rewritten files are read again
    _, info = load_dataset("fashion_mnist", "train", data_dir=tmp_path / "fm")
    assert info.num_examples == 30


def test_fashion_mnist_no_source_error(tmp_path, no_system_sources):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion_mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert f"data_dir: no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in {tmp_path}" in msg
    assert "ZOO_DATA_DIR: not set" in msg
    assert "Debian dataset-fashion-mnist: no train-images" in msg and "no-debian" in msg
    assert "TFDS fashion_mnist: ConnectionError: network disabled in tests" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "set ZOO_DATA_DIR" in msg and "network" in msg
    assert no_system_sources == [("fashion_mnist", "train", None)]


def test_corrupt_file_is_an_error_not_a_fallback(tmp_path, no_system_sources):
    make_fashion_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="expected 20 labels"):
        load_dataset("fashion_mnist", "test", data_dir=tmp_path)


@pytest.mark.skipif(not os.path.exists(DEBIAN_TRAIN), reason="Debian dataset-fashion-mnist is not installed")
def test_fashion_mnist_stored_statistics_match_real_train_split():
    x = read_idx(DEBIAN_TRAIN).astype(np.float64) / 255.0
    assert x.shape == (60000, 28, 28)
    assert x.mean() == pytest.approx(data.FASHION_MNIST_MEAN[0], abs=1e-12)
    assert x.std() == pytest.approx(data.FASHION_MNIST_STD[0], abs=1e-12)
    _, info = load_dataset("fashion_mnist", "test")
    assert info.num_examples == 10000 and info.source.startswith("debian:")


# -- validation -------------------------------------------------------------------------------------


def test_unknown_split_option_and_arguments():
    accepted = "unknown split 'validation' for dataset 'digits'. Accepted splits: train, test$"
    with pytest.raises(ValueError, match=accepted):
        load_dataset("digits", "validation")
    with pytest.raises(ValueError, match="unknown option.*colour.*Accepted: image_shape, num_classes, num_examples"):
        load_dataset("synthetic", "train", colour=True)
    with pytest.raises(ValueError, match="unknown option.*num_classes for dataset 'digits'. Accepted: none"):
        load_dataset("digits", "train", num_classes=3)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; received 0"):
        load_dataset("digits", "train", batch_size=0)
    with pytest.raises(ValueError, match="image_size must be"):
        load_dataset("digits", "train", image_size=(32,))
    with pytest.raises(ValueError, match="unknown augmentation 'crop_flp'.*Valid names: none, flip, crop.*crop_flip"):
        load_dataset("digits", "train", augment="crop_flp")
    with pytest.raises(ValueError, match=r"name must be a dataset name \(a str\): one of digits, fashion_mnist, "
                                         r"synthetic or a TFDS dataset; received None"):
        load_dataset(None, "train")
    with pytest.raises(ValueError, match="shuffle must be None, True or False; received 'yes'"):
        load_dataset("digits", "train", shuffle="yes")
    with pytest.raises(ValueError, match=r"split must be a str \(train or test .*\); received 0"):
        load_dataset("digits", 0)


def test_other_names_go_to_tfds(monkeypatch):
    fake = np.full((5, 4, 4, 3), 255, np.uint8), np.array([0, 1, 2, 0, 1]), ("a", "b", "c")
    seen = []
    monkeypatch.setattr(data, "_tfds_load", lambda name, split, data_dir: seen.append((name, split)) or fake)
    # Any name goes to TFDS, which also loads what its registry does not list (a dataset prepared in data_dir).
    ds, info = load_dataset("tiny_colors_for_test", "train[:5]", shuffle=False)
    assert seen == [("tiny_colors_for_test", "train[:5]")]
    assert info.source == "tfds:tiny_colors_for_test" and info.class_names == ("a", "b", "c")
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)
    x, _ = collect(ds)
    np.testing.assert_allclose(x, 1.0)  # (1 - 0.5) / 0.5

    def missing(name, split, data_dir):
        raise KeyError(f"dataset {name} not found")

    monkeypatch.setattr(data, "_tfds_load", missing)
    # A name TFDS does not know: a short error (TFDS's own listed its 400+ names in 8.8 KB).
    with pytest.raises(ValueError, match=r"^unknown dataset 'cifar1O': neither built in \(digits, fashion_mnist, "
                                         r"synthetic\) nor a TFDS dataset\. Close matches: cifar10, cifar100"):
        load_dataset("cifar1O", "train")
    close = "'fashion_mnst'.*Close matches: fashion_mnist"
    with pytest.raises(ValueError, match=close):
        load_dataset("fashion_mnst", "train")
    with pytest.raises(ValueError, match="could not load dataset 'cifar100' split 'train': it is not built in .*"
                                         "TFDS failed with KeyError"):
        load_dataset("cifar100", "train")  # a TFDS name that failed to load: TFDS's reason


# -- digits -----------------------------------------------------------------------------------------


def test_digits_splits_shapes_and_balance():
    train_ds, train = load_dataset("digits", "train", batch_size=256, normalize=False)
    test_ds, test = load_dataset("digits", "test", batch_size=256)
    assert (train.num_examples, test.num_examples) == (1437, 360)
    assert train.image_shape == (8, 8, 1) and train.source == "sklearn:digits" and train.class_names[3] == "3"
    x, y = collect(train_ds)
    assert x.shape == (1437, 8, 8, 1) and 0.0 <= x.min() and x.max() <= 1.0
    _, y_test = collect(test_ds)
    # Stratified: every class has its share (about 10%) in both splits.
    for labels in (y, y_test):
        share = np.bincount(labels, minlength=10) / len(labels)
        assert np.all(np.abs(share - 0.1) < 0.015)
    assert x.mean() == pytest.approx(train.mean[0], abs=1e-6)
    assert x.std() == pytest.approx(train.std[0], abs=1e-6)


def test_digits_resized_for_transfer():
    ds, info = load_dataset("digits", "test", batch_size=64, image_size=(32, 32), limit=100, augment="crop_flip")
    assert info.image_shape == (32, 32, 1) and info.num_examples == 100
    assert [tuple(x.shape) for x, _ in ds] == [(64, 32, 32, 1), (36, 32, 32, 1)]


# -- synthetic, batching, normalization -------------------------------------------------------------


def test_synthetic_options_and_determinism():
    kw = dict(image_shape=(12, 10, 3), num_classes=4, num_examples=40, shuffle=False, batch_size=40)
    x1, y1 = collect(load_dataset("synthetic", "train", **kw)[0])
    x2, y2 = collect(load_dataset("synthetic", "train", seed=5, **kw)[0])  # seed is the order, not the data
    x3, _ = collect(load_dataset("synthetic", "train", data_seed=1, **kw)[0])
    x4, _ = collect(load_dataset("synthetic", "test", **kw)[0])
    assert x1.shape == (40, 12, 10, 3) and np.bincount(y1).tolist() == [10, 10, 10, 10]
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(x1, x3) and not np.allclose(x1, x4)


def test_batches_limit_and_drop_remainder():
    ds, info = load_dataset("synthetic", "train", batch_size=30, limit=100)
    assert info.num_examples == 100 and len(ds) == 4
    assert [len(y) for _, y in ds] == [30, 30, 30, 10]
    ds, _ = load_dataset("synthetic", "train", batch_size=30, limit=100, drop_remainder=True)
    assert len(ds) == 3 and ds.element_spec[0].shape.as_list() == [30, 28, 28, 1]
    _, info = load_dataset("synthetic", "test", limit=10_000)
    assert info.num_examples == 256


def test_normalization_statistics():
    x, _ = collect(load_dataset("synthetic", "train", batch_size=512)[0])
    assert x.mean() == pytest.approx(0.0, abs=1e-5) and x.std() == pytest.approx(1.0, abs=1e-5)
    raw, _ = collect(load_dataset("synthetic", "train", batch_size=512, normalize=False)[0])
    np.testing.assert_allclose(x, (raw - raw.mean()) / raw.std(), atol=1e-4)


def test_pipeline_options_fixed_parallelism():
    ds, _ = load_dataset("synthetic", "test")
    options = ds.options()
    assert options.autotune.enabled is False and options.deterministic is True


# -- determinism for resume -------------------------------------------------------------------------


def test_same_seed_and_epoch_same_batches_skip_equals_tail():
    kw = dict(batch_size=32, num_examples=200, augment="crop_flip_erase", seed=3)
    x1, y1 = collect(load_dataset("synthetic", "train", epoch=2, **kw)[0])
    x2, y2 = collect(load_dataset("synthetic", "train", epoch=2, **kw)[0])
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    ds, _ = load_dataset("synthetic", "train", epoch=2, **kw)
    tail_x, tail_y = collect(ds.skip(3))
    np.testing.assert_array_equal(tail_x, x1[3 * 32 :])
    np.testing.assert_array_equal(tail_y, y1[3 * 32 :])
    # Another epoch or seed: another order.
    _, y_next = collect(load_dataset("synthetic", "train", epoch=3, **kw)[0])
    _, y_seed = collect(load_dataset("synthetic", "train", epoch=2, **{**kw, "seed": 4})[0])
    assert not np.array_equal(y1, y_next) and not np.array_equal(y1, y_seed)
    assert sorted(y1) == sorted(y_next)


def test_shuffle_default_and_augmentation_independent_of_batching():
    _, y_train = collect(load_dataset("synthetic", "train", num_examples=50, batch_size=50)[0])
    _, y_plain = collect(load_dataset("synthetic", "train", num_examples=50, batch_size=50, shuffle=False)[0])
    assert not np.array_equal(y_train, y_plain) and sorted(y_train) == sorted(y_plain)
    test_x, _ = collect(load_dataset("synthetic", "test", num_examples=50, shuffle=False)[0])
    np.testing.assert_array_equal(collect(load_dataset("synthetic", "test", num_examples=50)[0])[0], test_x)
    # Example i's augmentation depends on (seed, epoch, i) only: the batch size does not change it.
    kw = dict(num_examples=50, augment="crop_flip_erase", epoch=1)
    a, _ = collect(load_dataset("synthetic", "train", batch_size=7, **kw)[0])
    b, _ = collect(load_dataset("synthetic", "train", batch_size=50, **kw)[0])
    np.testing.assert_array_equal(a, b)


# -- augmentation -----------------------------------------------------------------------------------


def test_get_augment_names_and_validation():
    assert get_augment(None).is_identity and get_augment("none").is_identity
    assert get_augment("crop_flip") == Augment(random_crop_padding=4, horizontal_flip=True)
    assert get_augment("crop_flip_erase").random_erasing == 0.5
    custom = Augment(random_erasing=0.25)
    assert get_augment(custom) is custom
    assert set(augment_lib.AUGMENTATIONS) == {"none", "flip", "crop", "crop_flip", "crop_flip_erase"}
    with pytest.raises(TypeError, match="augment must be None, a name"):
        get_augment(3)
    with pytest.raises(ValueError, match="random_erasing is a probability"):
        Augment(random_erasing=1.5)
    with pytest.raises(ValueError, match="random_crop_padding must be a non-negative int"):
        Augment(random_crop_padding=-1)
    with pytest.raises(ValueError, match="erasing_scale"):
        Augment(erasing_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="erasing_ratio"):
        Augment(erasing_ratio=(True, 2.0))
    numpy_bounds = Augment(random_erasing=0.5, erasing_scale=(np.float32(0.25), np.float64(0.5)))
    assert numpy_bounds.erasing_scale == (0.25, 0.5) and all(type(b) is float for b in numpy_bounds.erasing_scale)


def _apply(aug, images, *, seed=0, epoch=0, fill=0.0):
    params = aug.draw(len(images), images.shape[1:3], seed=seed, epoch=epoch)
    out = aug.apply(tf.constant(images), {k: tf.constant(v) for k, v in params.items()}, fill=fill)
    return out.numpy(), params


def test_flip_flips_some_examples():
    images = np.random.default_rng(0).random((200, 6, 5, 2)).astype(np.float32)
    out, params = _apply(Augment(horizontal_flip=True), images)
    assert out.shape == images.shape
    flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(flipped ^ kept)
    np.testing.assert_array_equal(flipped, params["flip"])
    assert 0.35 < flipped.mean() < 0.65


def test_crop_shifts_content():
    images = np.zeros((100, 10, 10, 1), np.float32)
    images[:, 5, 5, 0] = 1.0
    out, params = _apply(Augment(random_crop_padding=2), images)
    assert out.shape == images.shape
    shifts = []
    for o, (dy, dx) in zip(out, params["offset"]):
        ys, xs = np.nonzero(o[..., 0])
        assert (ys.tolist(), xs.tolist()) == ([5 + 2 - dy], [5 + 2 - dx])  # pad 2, crop at (dy, dx)
        shifts.append((dy - 2, dx - 2))
    shifts = np.array(shifts)
    assert shifts.min() == -2 and shifts.max() == 2 and np.mean(np.any(shifts != 0, axis=1)) > 0.5
    # Content shifted in from the padding is black (0 on the [0, 1] scale).
    ones, params = _apply(Augment(random_crop_padding=2), np.ones((50, 10, 10, 1), np.float32))
    assert np.all(ones.sum(axis=(1, 2, 3)) == [(10 - abs(dy - 2)) * (10 - abs(dx - 2)) for dy, dx in params["offset"]])


def test_erasing_erases_a_rectangle_with_probability():
    n, h, w = 600, 20, 16
    images = np.ones((n, h, w, 3), np.float32)
    fill = np.array([0.25, 0.5, 0.75], np.float32)
    out, params = _apply(Augment(random_erasing=0.4), images, fill=fill)
    erased = np.any(out != 1.0, axis=(1, 2, 3))
    assert abs(erased.mean() - 0.4) < 0.06
    for o, is_erased, (top, left, bh, bw) in zip(out, erased, params["erase"]):
        if not is_erased:
            assert bh == 0
            continue
        mask = np.zeros((h, w), bool)
        mask[top : top + bh, left : left + bw] = True
        np.testing.assert_array_equal(o[mask], np.broadcast_to(fill, (mask.sum(), 3)))
        assert np.all(o[~mask] == 1.0)
        assert 0.02 * h * w * 0.5 <= bh * bw <= 0.4 * h * w * 1.5  # rounding of sides
        assert 0.3 / 1.5 <= bh / bw <= 3.3 * 1.5


def test_augmentation_deterministic_given_seeds():
    images = np.random.default_rng(1).random((64, 12, 12, 1)).astype(np.float32)
    aug = get_augment("crop_flip_erase")
    a, _ = _apply(aug, images, seed=7, epoch=3)
    b, _ = _apply(aug, images, seed=7, epoch=3)
    c, _ = _apply(aug, images, seed=7, epoch=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_erased_pixels_are_zero_after_normalization():
    ds, _ = load_dataset(
        "synthetic", "train", num_examples=64, batch_size=64, augment=Augment(random_erasing=1.0), noise=0.0
    )
    x, _ = collect(ds)
    # Every image has an erased rectangle of exact zeros (noise-free templates are rarely exactly the mean).
    assert all(np.sum(img == 0.0) >= 0.02 * 28 * 28 * 0.5 for img in x)


# -- in-memory arrays -------------------------------------------------------------------------------


def test_from_arrays_batches_as_given_and_is_deterministic_in_seed_and_epoch():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 1.0, (50, 6, 6, 2)).astype("float32")
    y = np.arange(50) % 5
    got_x, got_y = collect(data.from_arrays(x, y, batch_size=16))
    np.testing.assert_array_equal(got_x, x)  # in order, unscaled
    np.testing.assert_array_equal(got_y, y)
    assert [int(b.shape[0]) for b, _ in data.from_arrays(x, y, batch_size=16, drop_remainder=True)] == [16] * 3

    kw = dict(batch_size=16, shuffle=True, augment="crop_flip", seed=2, epoch=1)
    a_x, a_y = collect(data.from_arrays(x, y, **kw))
    b_x, b_y = collect(data.from_arrays(x, y, **kw))
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_y, b_y)
    assert sorted(a_y) == sorted(y) and not np.array_equal(a_y, y)
    tail_x, _ = collect(data.from_arrays(x, y, **kw).skip(2))  # resuming skips batches
    np.testing.assert_array_equal(tail_x, a_x[32:])
    c_x, _ = collect(data.from_arrays(x, y, **{**kw, "batch_size": 7}))  # the batch size changes nothing
    np.testing.assert_array_equal(c_x, a_x)
    _, next_y = collect(data.from_arrays(x, y, **{**kw, "epoch": 2}))
    assert not np.array_equal(next_y, a_y)


def test_from_arrays_erases_with_the_images_mean_and_refuses_arrays_it_cannot_batch():
    x = np.stack([np.full((8, 8, 2), v, np.float32) for v in (2.0, 4.0)] * 10)  # mean 3 in both channels
    x[..., 1] *= 10  # channel 1: mean 30
    got, _ = collect(data.from_arrays(x, np.zeros(20, int), augment=Augment(random_erasing=1.0)))
    erased = got != x
    assert erased.any()
    np.testing.assert_allclose(got[..., 0][erased[..., 0]], 3.0)
    np.testing.assert_allclose(got[..., 1][erased[..., 1]], 30.0)

    with pytest.raises(ValueError, match=r"same, non-zero length; received 20 images and 3 labels"):
        data.from_arrays(x, np.zeros(3, int))
    with pytest.raises(ValueError, match=r"received images of shape \(20,\) and labels of shape \(20, 1, 1\)"):
        data.from_arrays(x[:, 0, 0, 0], np.zeros((20, 1, 1), int))
    with pytest.raises(ValueError, match=r"needs images \[N, H, W, C\] or \[N, H, W\]; received shape \(20, 128\)"):
        data.from_arrays(x.reshape(20, 128), np.zeros(20, int), augment="flip")
    with pytest.raises(ValueError, match=r"class ids; received non-integer values such as 0.5"):
        data.from_arrays(x, np.full(20, 0.5))
    with pytest.raises(ValueError, match=r"\(or \[N, 1\]\) are class ids; received non-integer values such as 1.5"):
        data.from_arrays(x, np.full((20, 1), 1.5))
    with pytest.raises(ValueError, match=r"numbers\); received dtype string"):
        data.from_arrays(x, np.array(["a"] * 20))
    np.testing.assert_array_equal(collect(data.from_arrays(x, np.ones(20)))[1], 1.0)  # integral floats are ids
    gray, _ = collect(data.from_arrays(x[..., 0], np.zeros(20, int), augment="flip", seed=1))
    flipped, _ = collect(data.from_arrays(x[..., :1], np.zeros(20, int), augment="flip", seed=1))
    np.testing.assert_array_equal(gray, flipped[..., 0])  # [N, H, W] augmented as one channel
    with pytest.raises(ValueError, match="shuffle must be True or False"):
        data.from_arrays(x, np.zeros(20, int), shuffle="yes")
