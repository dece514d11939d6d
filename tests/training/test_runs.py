"""Training runs on disk (`training.runs`); the CLI's end-to-end runs are in tests/zoo/test_cli_train.py."""

import pytest
import tf_keras as keras

from training import runs
from training.recipes import Recipe


def test_resuming_with_fewer_epochs_than_the_run_is_refused_before_anything_is_written(tmp_path):
    spec = runs.RunSpec(model="resnet20", dataset="synthetic", options={"stage_depths": (1, 1, 1)}, limit=64)
    recipe = Recipe(epochs=3, batch_size=32, steps_per_execution=1)

    class Stop(keras.callbacks.Callback):  # after the first epoch's checkpoint
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train_run(spec, recipe=recipe, out_dir=tmp_path, verbose=0, callbacks=[Stop()], command="first")
    saved = runs.saved_run(tmp_path)
    assert saved.epochs_done == 1 and saved.recipe.epochs == 3
    run_json = (tmp_path / runs.RUN_FILE).stat().st_mtime_ns
    # 2 >= the epochs done, but training.fit would refuse a run shorter than the recipe it continues.
    with pytest.raises(ValueError, match=r"is a run of 3 epochs \(already trained 1 epochs\); received epochs=2\. "
                                         r"Resume with epochs >= 3"):
        runs.train_run(spec, recipe=recipe.replace(epochs=2), out_dir=tmp_path, resume=True, verbose=0,
                       command="second")
    assert (tmp_path / runs.COMMAND_FILE).read_text() == "first\n"
    assert (tmp_path / runs.RUN_FILE).stat().st_mtime_ns == run_json
    # As training.fit, a resume may change steps_per_execution.
    runs.train_run(spec, recipe=recipe.replace(steps_per_execution=2), out_dir=tmp_path, resume=True, verbose=0,
                   command="third")
    assert runs.saved_run(tmp_path).epochs_done == 3


def test_shipped_recipes_load_by_name_or_by_the_path_the_weights_commands_give(tmp_path, monkeypatch):
    shipped = runs.shipped_recipes()
    assert "resnet20_fashion_mnist" in shipped and len(shipped) >= 11
    monkeypatch.chdir(tmp_path)  # not the repository: an installed package
    by_name = runs.load_recipe("resnet20_fashion_mnist")
    assert runs.load_recipe("training/recipes/resnet20_fashion_mnist.json") == by_name
    assert by_name == Recipe.from_file(shipped["resnet20_fashion_mnist"])
    (tmp_path / "finetune").mkdir()  # a folder of a shipped recipe's name is no recipe file
    assert runs.load_recipe("finetune") == Recipe.from_file(shipped["finetune"])
    (tmp_path / "mine.json").write_text('{"epochs": 3}')
    assert runs.load_recipe("mine.json").epochs == 3  # a file of the caller's comes first
    with pytest.raises(ValueError, match=r"no recipe file 'resnet21'\. Accepted: .* a shipped recipe: "
                                         r"alexnet_2012_fashion_mnist, "):
        runs.load_recipe("resnet21")
