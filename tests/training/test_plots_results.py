"""training.plots: the confusion-matrix and training-curve PNGs (optimizer_paths is tested in its own file)."""

import csv

import numpy as np
import pytest

from training.evaluation import EvalResult
from training.plots import confusion_matrix_png, training_curves_png

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

HISTORY = {
    "loss": [2.0, 1.2, 0.8, 0.6],
    "accuracy": [0.3, 0.6, 0.75, 0.8],
    "val_loss": [1.5, 1.0, 0.9, 0.95],
    "val_accuracy": [0.5, 0.65, 0.7, 0.69],
}


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 5000


def _result():
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 30, (10, 10))
    matrix[np.diag_indices(10)] = rng.integers(700, 990, 10)
    recall = np.diag(matrix) / matrix.sum(axis=1)
    return EvalResult(accuracy=float(np.trace(matrix) / matrix.sum()), top5_accuracy=0.99, loss=0.4,
                      per_class_accuracy=tuple(recall), confusion_matrix=matrix,
                      num_examples=int(matrix.sum()), class_names=tuple(FASHION))


def test_confusion_matrix_from_result_dict_and_array(tmp_path):
    result = _result()
    out = confusion_matrix_png(result, tmp_path / "cm.png")
    assert out == tmp_path / "cm.png" and _is_png(out)
    assert _is_png(confusion_matrix_png(result.to_dict(), tmp_path / "from_dict.png", normalize=False))
    counts = confusion_matrix_png(np.array(result.confusion_matrix), str(tmp_path / "nested" / "counts.png"),
                                  class_names=FASHION, normalize=False, title="counts")
    assert _is_png(counts)


def test_confusion_matrix_with_an_empty_row_and_many_classes(tmp_path):
    matrix = np.eye(4, dtype=int) * 5
    matrix[3] = 0  # a class with no examples must not divide by zero
    assert _is_png(confusion_matrix_png(matrix, tmp_path / "empty_row.png"))
    assert _is_png(confusion_matrix_png(np.eye(100, dtype=int), tmp_path / "hundred.png"))


def test_confusion_matrix_errors(tmp_path):
    with pytest.raises(ValueError, match=r"square \[true, pred\]; received shape \(2, 3\)"):
        confusion_matrix_png(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="class_names has 2 names for a 3x3"):
        confusion_matrix_png(np.eye(3), tmp_path / "x.png", class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"must end in \.png"):
        confusion_matrix_png(np.eye(3), tmp_path / "x.jpg")


def test_training_curves_from_history_object_dict_and_csv(tmp_path):
    class FakeHistory:  # what model.fit returns: an object with a .history dict
        history = HISTORY

    assert _is_png(training_curves_png(FakeHistory(), tmp_path / "history.png"))
    assert _is_png(training_curves_png(HISTORY, tmp_path / "dict.png"))

    log = tmp_path / "log.csv"  # a CSVLogger file from a resumed run: epoch 1 was logged twice
    with open(log, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"])
        for epoch in (0, 1, 1, 2, 3):
            writer.writerow([epoch, HISTORY["accuracy"][epoch], HISTORY["loss"][epoch], 0.1,
                             HISTORY["val_accuracy"][epoch], HISTORY["val_loss"][epoch]])
    assert _is_png(training_curves_png(log, tmp_path / "csv.png"))
    assert _is_png(training_curves_png(str(log), tmp_path / "csv_str.png"))


def test_training_curves_loss_only_and_errors(tmp_path):
    assert _is_png(training_curves_png({"loss": [1.0]}, tmp_path / "one_epoch.png"))
    with pytest.raises(ValueError, match=r"no per-epoch 'loss'; received keys \['accuracy'\]"):
        training_curves_png({"accuracy": [0.5]}, tmp_path / "x.png")
    with pytest.raises(TypeError, match="CSVLogger"):
        training_curves_png(42, tmp_path / "x.png")


def test_an_interrupted_write_keeps_the_previous_png_whole(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    matrix, curves = tmp_path / "confusion_matrix.png", tmp_path / "curves.png"
    confusion_matrix_png(_result(), matrix)
    training_curves_png(HISTORY, curves)
    before = {p: p.read_bytes() for p in (matrix, curves)}

    def interrupted(self, fname, **kwargs):  # Ctrl-C halfway through encoding
        with open(fname, "wb") as f:
            f.write(PNG_MAGIC)
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        confusion_matrix_png(_result(), matrix)
    with pytest.raises(KeyboardInterrupt):
        training_curves_png(HISTORY, curves)
    assert {p: p.read_bytes() for p in (matrix, curves)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_matrix.png", "curves.png"]  # no temporary files
