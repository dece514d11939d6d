"""FractalNet: the fractal layout, the join's mean and drop-path (local and global), the counts."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import collections
import itertools
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from zoo import _registry as registry
from zoo.models.fractalnet.fractalnet import FractalJoin, GlobalDropPathSampler


def _expected_params(columns, channels, in_channels, num_classes, stem=False):
    """Closed form: per block, C convs from the block input and 2**C - 1 - C from its own width."""
    total, cin = 0, in_channels
    if stem:
        total, cin = 7 * 7 * in_channels * channels[0] + 2 * channels[0], channels[0]
    for cout in channels:
        convs_in, convs_own = columns, 2**columns - 1 - columns
        total += convs_in * (9 * cin * cout + 2 * cout) + convs_own * (9 * cout * cout + 2 * cout)  # conv + BN
        cin = cout
    return total + cin * num_classes + num_classes


@pytest.mark.parametrize(
    "name, columns, channels, stem, params",
    [
        ("fractalnet20", 3, (64, 128, 256, 512, 512), False, 33_724_618),
        ("fractalnet40", 4, (64, 128, 256, 512, 512), False, 76_106_634),
        ("fractalnet34", 4, (64, 128, 256, 512), True, 41_359_784),
    ],
)
def test_trainable_params(name, columns, channels, stem, params):
    # Computed, not published: the paper's Table 1 numbers (20 layers 38.6M, 40 layers 22.9M) do not fit
    # the architecture it describes (see the module docstring), so no Published count is claimed.
    info = zoo.model_info(name)
    in_channels, num_classes = info.input_shape[-1], info.num_classes
    assert info.trainable_params == _expected_params(columns, channels, in_channels, num_classes, stem) == params
    assert registry.get_spec(name).published is None


def _conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("columns", [1, 2, 3, 4])
def test_fractal_layout(columns):
    model = zoo.create_model("fractalnet40", input_shape=(32, 32, 3), columns=columns, channels=(4, 4))
    convs = collections.Counter()
    for layer in _conv_layers(model):
        block, column = re.match(r"block(\d)_col(\d)_conv\d+$", layer.name).groups()
        convs[int(block), int(column)] += 1
    # Column c holds 2**(c - 1) convs in every block.
    assert convs == {(b, c): 2 ** (c - 1) for b in (1, 2) for c in range(1, columns + 1)}
    joins = [layer for layer in model.layers if isinstance(layer, FractalJoin)]
    # Joins at every even depth step; the last one of a block joins all the columns.
    assert [j.name for j in joins if j.name.startswith("block1")] == [
        f"block1_join{s}" for s in range(2, 2 ** (columns - 1) + 1, 2)
    ]
    if columns > 1:
        assert model.get_layer(f"block1_join{2 ** (columns - 1)}").columns == tuple(range(columns))
        assert model.get_layer("block1_join2").columns == (columns - 2, columns - 1)
    assert any(isinstance(layer, GlobalDropPathSampler) for layer in model.layers) == (columns > 1)
    # The deepest path: 2**(C - 1) convs per block.
    assert sum(v for (b, c), v in convs.items() if c == columns) == 2 * 2 ** (columns - 1)


def test_pooling_and_stems():
    small = zoo.create_model("fractalnet20", input_shape=(28, 28, 1), include_top=False, channels=(4,) * 5)
    assert [small.get_layer(f"block{b}_pool").output_shape[1] for b in range(1, 6)] == [14, 7, 4, 2, 1]
    big = zoo.create_model("fractalnet34", include_top=False, channels=(4,) * 4)
    assert big.get_layer("stem_conv").kernel_size == (7, 7)
    assert [big.get_layer(f"block{b}_pool").output_shape[1] for b in range(1, 4)] == [28, 14, 7]
    assert big.output_shape == (None, 7, 7, 4)  # the last block feeds the global average pool


def _inputs(n, shape=(2, 3)):
    return [tf.fill(shape, float(10**i)) for i in range(n)]  # 1, 10, 100, ...: sums identify the subset


def test_join_is_the_exact_mean_at_inference():
    xs = [tf.random.stateless_normal((2, 4, 4, 3), seed=(i, 0)) for i in range(3)]
    mean = (xs[0] + xs[1] + xs[2]) / 3
    join = FractalJoin(columns=(0, 1, 2), drop_rate=0.9)
    np.testing.assert_allclose(join(xs, training=False).numpy(), mean.numpy(), rtol=1e-6)
    global_mask = tf.one_hot([1, 1], 3)  # a global column chosen: still no dropping at inference
    np.testing.assert_allclose(join(xs + [global_mask], training=False).numpy(), mean.numpy(), rtol=1e-6)
    # No drop-path at all: the mean in training too.
    still = FractalJoin(columns=(0, 1, 2), drop_rate=0.0)
    np.testing.assert_allclose(still(xs + [tf.zeros([2, 3])], training=True).numpy(), mean.numpy(), rtol=1e-6)


def test_local_drop_path_keeps_at_least_one_input():
    xs = _inputs(3)
    subsets = collections.Counter()
    join = FractalJoin(columns=(0, 1, 2), drop_rate=0.5, seed=1)
    for _ in range(200):
        out = join(xs + [tf.zeros([2, 3])], training=True).numpy()
        assert np.all(out == out.flat[0])  # one draw per batch
        matches = [s for r in (1, 2, 3) for s in itertools.combinations(range(3), r)
                   if np.isclose(out.flat[0], sum(10.0**i for i in s) / len(s))]
        assert len(matches) == 1, out.flat[0]  # the mean of a non-empty subset
        subsets[matches[0]] += 1
    assert len(subsets) == 7  # every non-empty subset occurs
    always_drop = FractalJoin(columns=(0, 1, 2), drop_rate=1.0)
    for _ in range(20):  # every input dropped: exactly one, chosen uniformly, survives
        assert always_drop(xs, training=True).numpy().flat[0] in (1.0, 10.0, 100.0)


def test_global_drop_path_keeps_only_the_chosen_column():
    xs = _inputs(2)
    join = FractalJoin(columns=(2, 3), drop_rate=0.15)
    for column, expected in ((2, 1.0), (3, 10.0), (0, 0.0)):  # column 0 does not reach this join: zeros
        mask = tf.one_hot([column, column], 4)
        out = join(xs + [mask], training=True).numpy()
        assert np.all(out == expected)


def test_sampler():
    sampler = GlobalDropPathSampler(4, global_drop_ratio=1.0, seed=3)
    x = tf.zeros([5, 8, 8, 3])
    chosen = collections.Counter()
    for _ in range(40):
        mask = sampler(x, training=True).numpy()
        assert mask.shape == (5, 4) and np.all(mask == mask[0]) and mask[0].sum() == 1.0
        chosen[int(mask[0].argmax())] += 1
    assert set(chosen) == {0, 1, 2, 3}
    assert not np.any(sampler(x, training=False).numpy())
    assert not np.any(GlobalDropPathSampler(4, global_drop_ratio=0.0)(x, training=True).numpy())
    half = [GlobalDropPathSampler(4, 0.5)(x, training=True).numpy()[0].sum() for _ in range(100)]
    assert 20 < sum(half) < 80


def _columns_with_gradient(model, x):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    live, dead = set(), set()
    for w, g in zip(model.trainable_weights, grads):
        column = re.search(r"_col(\d+)_", w.name)
        if column:
            (live if g is not None and np.any(g.numpy()) else dead).add(int(column.group(1)))
    return live, dead


def test_global_drop_path_trains_a_single_column():
    model = zoo.create_model("fractalnet20", input_shape=(16, 16, 3), channels=(4, 4, 4), global_drop_ratio=1.0)
    x = tf.random.stateless_normal((3, 16, 16, 3), seed=(1, 2))
    trained = set()
    for _ in range(12):
        live, dead = _columns_with_gradient(model, x)
        assert len(live) == 1 and not live & dead  # every weight of one column, none of the others
        trained |= live
    assert len(trained) >= 2  # the column is drawn afresh each forward pass
    # Inference is deterministic: the mean everywhere.
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())


def test_layer_configs_round_trip():
    join = FractalJoin(columns=(1, 2, 3), drop_rate=0.2, seed=7, name="block1_join4")
    clone = FractalJoin.from_config(join.get_config())
    assert (clone.columns, clone.drop_rate, clone.seed, clone.name) == ((1, 2, 3), 0.2, 7, "block1_join4")
    sampler = GlobalDropPathSampler(3, global_drop_ratio=0.25, seed=1, name="global_drop_path")
    clone = GlobalDropPathSampler.from_config(sampler.get_config())
    assert (clone.num_columns, clone.global_drop_ratio, clone.seed) == (3, 0.25, 1)
    for cls in (FractalJoin, GlobalDropPathSampler):
        assert keras.saving.get_registered_object(f"zoo>{cls.__name__}") is cls
    restored = keras.layers.deserialize(keras.layers.serialize(join))
    assert isinstance(restored, FractalJoin) and restored.columns == (1, 2, 3)


def test_dropout_rates():
    model = zoo.create_model("fractalnet20", input_shape=(32, 32, 3), channels=(4,) * 5,
                             dropout_rates=(0.0, 0.1, 0.2, 0.3, 0.4))
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
    assert len(rates) == 4 * 7 and rates["block2_col1_dropout1"] == 0.1 and rates["block5_col3_dropout4"] == 0.4
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in
                   zoo.create_model("fractalnet20", input_shape=(32, 32, 3), channels=(4,) * 5).layers)


@pytest.mark.parametrize(
    "option, value",
    [("columns", 0), ("channels", ()), ("channels", (4, 0)), ("local_drop_rate", 1.5),
     ("global_drop_ratio", -0.1), ("dropout_rates", (0.1, 0.2)), ("dropout_rates", (1.0,) * 5)],
)
def test_option_errors(option, value):
    with pytest.raises(ValueError, match=option):
        zoo.create_model("fractalnet20", **{option: value})


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="columns"):
        FractalJoin(columns=(0,))
    with pytest.raises(ValueError, match="drop_rate"):
        FractalJoin(columns=(0, 1), drop_rate=2.0)
    with pytest.raises(ValueError, match="expected 2 inputs"):
        FractalJoin(columns=(0, 1))(_inputs(4), training=False)
    with pytest.raises(ValueError, match="global_drop_ratio"):
        GlobalDropPathSampler(3, global_drop_ratio=1.5)
