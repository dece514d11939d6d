"""``training.plots.optimizer_paths``: the six seed optimizers drawn on a 2-D loss surface."""

import numpy as np
import pytest

from training.optimizers import SEED_OPTIMIZERS
from training.plots import SURFACES, _optimizer_trajectories, optimizer_paths


def test_writes_a_readable_png(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    out = optimizer_paths(tmp_path / "figures" / "paths.png", steps=20, surface="saddle")
    assert out == tmp_path / "figures" / "paths.png"
    assert [p.name for p in out.parent.iterdir()] == ["paths.png"]  # written atomically: no temporary file left
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    image = matplotlib.image.imread(out)
    assert image.shape[0] >= 500 and image.shape[1] >= 800
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize("surface", list(SURFACES))
def test_each_path_has_a_point_per_step_and_starts_together(surface):
    steps = 12
    paths = _optimizer_trajectories(surface=surface, steps=steps)
    assert list(paths) == list(SEED_OPTIMIZERS)
    start = np.array(SURFACES[surface].start)
    for name, points in paths.items():
        assert points.shape == (steps + 1, 2), name
        np.testing.assert_array_equal(points[0], start)
        assert np.isfinite(points).all(), name
    f = SURFACES[surface].f
    assert all(f(*points[-1]) < f(*start) for points in paths.values())


def test_the_paths_come_from_the_real_optimizers():
    # SGD's first step on 0.1 x^2 + 2 y^2 is -lr * (0.2 x, 4 y); Adam's moves each coordinate by lr.
    paths = _optimizer_trajectories(surface="ravine", steps=1, learning_rates={"sgd": 0.1, "adam": 0.25})
    x, y = SURFACES["ravine"].start
    np.testing.assert_allclose(paths["sgd"][1], [x - 0.1 * 0.2 * x, y - 0.1 * 4 * y], rtol=1e-6)
    np.testing.assert_allclose(paths["adam"][1], [x + 0.25, y - 0.25], rtol=1e-6)


def test_errors_name_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match="unknown surface 'bowl'.*Accepted: ravine, saddle"):
        optimizer_paths(tmp_path / "p.png", surface="bowl")
    with pytest.raises(ValueError, match="unknown optimizer.*adamw. Accepted: sgd, momentum"):
        optimizer_paths(tmp_path / "p.png", learning_rates={"adamw": 0.1})
    with pytest.raises(ValueError, match="steps must be a positive int; received 0"):
        optimizer_paths(tmp_path / "p.png", steps=0)
