"""Tests of ``zoo train``, ``zoo eval`` and ``zoo finetune`` (`zoo.cli` over `training.runs`).

One tiny run on scikit-learn's 8x8 digits (a one-block-per-stage ResNet, 256 examples, one epoch)
is trained once per module and reused; the commands run in-process through `zoo.cli.main`.
"""

import json
import os
import shlex
import shutil

import pytest
import tensorflow as tf

import zoo
from zoo.cli import _key_value, main

TINY = ["resnet20", "--dataset", "digits", "-o", "stage_depths=(1,1,1)", "--limit", "256",
        "--input-shape", "8", "8", "1"]
RUN_FILES = ("eval.json", "confusion_matrix.png", "curves.png", "final_weights.h5", "run.json", "command.txt",
             "recipe.json", "state.json", "log.csv")


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("zoo"), lines[0]
    return lines[0]


def _summary_line(out: str) -> str:
    return next(line for line in out.splitlines() if " accuracy " in f" {line} " and "loss" in line)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-epoch run: its directory and what `zoo train` printed."""
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", *TINY, "--epochs", "1", "--batch-size", "64", "--out", str(out)]
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(argv)
    assert code == 0, buffer.getvalue()[-2000:]
    return out, buffer.getvalue(), argv


def test_train_writes_the_run_and_prints_accuracy(run):
    out, printed, argv = run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["model"] == "resnet20" and evaluation["dataset"] == "digits"
    assert evaluation["num_examples"] == 256 and len(evaluation["per_class_accuracy"]) == 10
    assert f"accuracy {evaluation['accuracy']:.2%}" in _summary_line(printed)
    assert "Shirt" not in printed and "\n9 " in printed  # the per-class table, digits' class names
    assert (out / "command.txt").read_text() == shlex.join(["zoo", *argv]) + "\n"
    spec = json.loads((out / "run.json").read_text())
    assert spec["options"] == {"stage_depths": [1, 1, 1]} and spec["input_shape"] == [8, 8, 1]
    assert spec["limit"] == 256 and spec["num_classes"] == 10
    assert json.loads((out / "recipe.json").read_text())["batch_size"] == 64


def test_train_into_a_run_without_resume_is_refused(run, capsys):
    out, _, argv = run
    before = (out / "final_weights.h5").stat().st_mtime_ns
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "holds a run" in line and "--resume" in line and "new --out" in line
    assert (out / "final_weights.h5").stat().st_mtime_ns == before


def test_resume_continues_the_run_to_more_epochs(run, tmp_path, capsys):
    source, _, argv = run
    out = tmp_path / "resumed"
    shutil.copytree(source, out)
    argv = [a if a != str(source) else str(out) for a in argv]
    steps = json.loads((out / "state.json").read_text())["step"]
    assert steps == 4  # 256 examples in batches of 64

    assert main([*argv, "--epochs", "2", "--resume"]) == 0, capsys.readouterr().err
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 2 * steps and len(state["history"]) == 2
    assert len((out / "command.txt").read_text().splitlines()) == 2
    assert json.loads((out / "recipe.json").read_text())["epochs"] == 2
    printed = capsys.readouterr().out
    assert f"accuracy {json.loads((out / 'eval.json').read_text())['accuracy']:.2%}" in _summary_line(printed)

    # Another recipe is not a resume; fewer epochs than done neither.
    assert main([*argv, "--epochs", "2", "--resume", "--lr", "0.2"]) == 2
    assert "learning_rate" in _one_error_line(capsys.readouterr().err)
    assert main([*argv, "--epochs", "1", "--resume"]) == 2
    assert "already trained 2 epochs" in _one_error_line(capsys.readouterr().err)
    # Without the flags it was started with, a resume continues by the run's own recipe.json (batches of 64).
    i = argv.index("--batch-size")
    assert main([*argv[:i], *argv[i + 2:], "--epochs", "3", "--resume"]) == 0, capsys.readouterr().err
    assert json.loads((out / "state.json").read_text())["step"] == 3 * steps


def test_resume_needs_a_run(tmp_path, capsys):
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "holds no run" in _one_error_line(capsys.readouterr().err)


def test_eval_prints_the_accuracy_of_eval_json(run, tmp_path, capsys, monkeypatch):
    out, _, _ = run
    expected = json.loads((out / "eval.json").read_text())
    argv = ["eval", *TINY, "--weights", str(out / "final_weights.h5"), "--out", str(tmp_path / "ev")]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"accuracy {expected['accuracy']:.2%}" in _summary_line(printed)
    assert f"loss {expected['loss']:.4f}" in _summary_line(printed)
    again = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert again["confusion_matrix"] == expected["confusion_matrix"]
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()
    # without -o stage_depths=(1, 1, 1): the run.json beside the weights says how the run built its model
    argv = ["eval", "resnet20", "--dataset", "digits", "--limit", "256", "--weights", str(out / "final_weights.h5")]
    assert main(argv) == 0, capsys.readouterr().err
    assert f"accuracy {expected['accuracy']:.2%}" in _summary_line(capsys.readouterr().out)
    # so does the run.json above its checkpoints: the last one holds the final weights
    checkpoint = tf.train.latest_checkpoint(str(out / "checkpoints"))
    for weights in (checkpoint, f"{checkpoint}.index"):
        argv = ["eval", "resnet20", "--dataset", "digits", "--limit", "256", "--weights", weights]
        assert main(argv) == 0, capsys.readouterr().err
        assert f"accuracy {expected['accuracy']:.2%}" in _summary_line(capsys.readouterr().out)
    with monkeypatch.context() as inside:  # named from inside checkpoints/: the run.json above was missed
        inside.chdir(out / "checkpoints")
        assert main([*argv[:-1], os.path.basename(checkpoint)]) == 0, capsys.readouterr().err
        assert f"accuracy {expected['accuracy']:.2%}" in _summary_line(capsys.readouterr().out)
    assert main([*argv[:-1], str(out / "checkpoints")]) == 2
    assert f"is a directory. Accepted: a weights file, a SavedModel directory, or a checkpoint's prefix, e.g. the " \
           f"latest checkpoint in it, " \
           f"'{checkpoint}'" in _one_error_line(capsys.readouterr().err)
    assert main(["eval", "vgg11", "--dataset", "digits", "--weights", checkpoint]) == 2  # the run's file named
    assert f"{out / 'run.json'} records a resnet20 run" in _one_error_line(capsys.readouterr().err)


def test_finetune_runs(run, tmp_path, capsys, monkeypatch):
    out, _, _ = run
    ft = tmp_path / "ft"
    argv = ["finetune", *TINY, "--weights", str(out / "final_weights.h5"), "--train-layers", "last:2",
            "--epochs", "1", "--lr", "0.01", "--out", str(ft)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "accuracy" in _summary_line(capsys.readouterr().out)
    spec = json.loads((ft / "run.json").read_text())
    assert spec["train_layers"] == "last:2" and spec["source_classes"] == 10
    assert (ft / "eval.json").is_file() and (ft / "curves.png").is_file()
    # a run's weights fine-tune without its -o: the run.json beside them gives the source's options and classes
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finetune").mkdir()  # not the shipped recipe of that name, which is the default
    assert main(["finetune", "resnet20", "--dataset", "digits", "--limit", "256", "--weights",
                 str(out / "final_weights.h5"), "--epochs", "1", "--out", str(tmp_path / "ft2")]) == 0, \
        capsys.readouterr().err
    spec = json.loads((tmp_path / "ft2" / "run.json").read_text())
    assert spec["options"] == {"stage_depths": [1, 1, 1]} and spec["source_classes"] == 10
    recipe = json.loads((tmp_path / "ft2" / "recipe.json").read_text())  # the shipped fine-tuning recipe
    assert (recipe["optimizer"], recipe["learning_rate"], recipe["epochs"]) == ("adam", 0.001, 1)
    capsys.readouterr()
    # its weights evaluate as the run evaluated them, the model built as the run built it
    assert main(["eval", *TINY, "--weights", str(ft / "final_weights.h5")]) == 0, capsys.readouterr().err
    accuracy = json.loads((ft / "eval.json").read_text())["accuracy"]
    assert f"accuracy {accuracy:.2%}" in _summary_line(capsys.readouterr().out)


@pytest.mark.parametrize("argv, says", [
    (["train", "resnet20", "--dataset", "fashon_mnist"], "Close matches: fashion_mnist"),
    (["train", "resnet21", "--dataset", "digits"], "unknown model 'resnet21'"),
    (["train", "resnet20", "--dataset", "digits", "-o", "depth"], "expected KEY=VALUE"),
    (["train", "resnet20", "--dataset", "digits", "-o", "depth=3"], "unknown option(s) depth"),
    (["train", "resnet20", "--dataset", "digits", "-o", "stage_depths=3"], "must be tuple[int, ...]"),
    (["train", "resnet20", "--dataset", "digits", "--optimizer", "adamx"], "Close matches: adamax"),
    (["train", "resnet20", "--dataset", "digits", "--augment", "flop"], "Valid names"),
    (["train", "resnet20", "--dataset", "digits", "--input-shape", "8", "8", "3"], "channel"),
    (["train", "resnet20", "--dataset", "digits", "--epochs", "0"], "epochs"),
    (["train", "resnet20", "--dataset", "digits", "--recipe", "/no/such/recipe.json"],
     "no recipe file '/no/such/recipe.json'. Accepted: a recipe's JSON file"),
    (["eval", "resnet20", "--dataset", "digits", "--weights", "/no/such.h5"], "no such file"),
    (["finetune", "resnet20", "--dataset", "digits", "--weights", "/no/such.h5"], "no such file"),
])
def test_bad_arguments_exit_2_with_one_line(argv, says, tmp_path, capsys):
    out = tmp_path / "out"
    if argv[0] != "eval":
        argv = [*argv, "--out", str(out)]
    assert main(argv) == 2
    assert says in _one_error_line(capsys.readouterr().err)
    assert not out.exists()  # nothing is written before the arguments are checked


def test_bad_recipe_file_exits_2(tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"epochs": 1, "learning_rat": 0.1}')
    assert main(["train", *TINY, "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 2
    assert "unknown recipe field(s) learning_rat" in _one_error_line(capsys.readouterr().err)
    recipe.write_text("{epochs: 1")
    assert main(["train", *TINY, "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 2
    assert "not valid JSON" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("text, parsed", [
    ("stage_depths=(2,2,2)", ("stage_depths", (2, 2, 2))),
    ("dropout=0.1", ("dropout", 0.1)),
    ("stem=small", ("stem", "small")),
    ("shortcut='zero_pad'", ("shortcut", "zero_pad")),
    ("x==1", ("x", "=1")),
])
def test_key_value(text, parsed):
    assert _key_value(text) == parsed


def test_help_lists_the_training_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {command} " in out for command in ("train", "eval", "finetune"))


def test_demo_evaluates_the_shipped_sample_when_the_dataset_is_missing(tmp_path, capsys, monkeypatch):
    import training.data
    from zoo import demo
    from zoo._weights import sample_images

    def missing(*args, **kwargs):
        raise FileNotFoundError("no Fashion-MNIST source (tried: test)")

    monkeypatch.setattr(training.data, "load_dataset", missing)
    assert demo.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    meta = zoo.get_weights_info(demo.DEFAULT_WEIGHTS)
    _, labels = sample_images("fashion_mnist")
    expected = sum(int(p == t) for p, t in zip(meta.sample_predictions, labels)) / len(labels)
    assert "not available here (no Fashion-MNIST source" in out and "100 sample test images" in out
    assert f"Test accuracy on 100 images (the package's sample): {expected:.2%}" in out
    assert (tmp_path / "samples.png").stat().st_size > 10_000 and (tmp_path / "confusion_matrix.png").exists()


def test_train_distills_from_shipped_weights_and_checks_they_fit(tmp_path, monkeypatch, capsys):
    from _fashion import make_fashion_dir

    make_fashion_dir(tmp_path / "data", n_train=64, n_test=32)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "data"))
    student = ["resnet20", "--dataset", "fashion_mnist", "-o", "stage_depths=(1,1,1)", "--epochs", "1",
               "--batch-size", "32"]
    assert main(["train", *student, "--teacher", "resnet20.fashion_mnist", "--out", str(tmp_path / "kd")]) == 0
    assert json.loads((tmp_path / "kd" / "run.json").read_text())["teacher"] == "resnet20.fashion_mnist"
    weights = (tmp_path / "kd" / "final_weights.h5")
    model = zoo.create_model("resnet20", stage_depths=(1, 1, 1), input_shape=(28, 28, 1), num_classes=10)
    model.load_weights(str(weights))  # the run's weights are the student's
    capsys.readouterr()
    assert main(["train", *student, "--teacher", "resnet20.nope", "--out", str(tmp_path / "bad")]) == 2
    assert "teacher 'resnet20.nope' is not shipped pretrained weights" in _one_error_line(capsys.readouterr().err)
    assert main(["train", *student, "--input-shape", "32", "32", "1", "--teacher", "resnet20.fashion_mnist",
                 "--out", str(tmp_path / "bad")]) == 2
    assert ("teacher resnet20.fashion_mnist takes 28x28x1 and predicts 10 classes; this run's model takes 32x32x1"
            in _one_error_line(capsys.readouterr().err))
