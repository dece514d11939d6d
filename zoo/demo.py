"""``make demo``: train a small zoo CNN on real Fashion-MNIST, evaluate it on the full test set, draw the results.

    $ python -m zoo.demo [--out DIR]

A ResNet with two basic blocks per stage (`resnet20` with ``stage_depths=(2, 2, 2)``, ResNet-14,
173K parameters) trains for a few epochs with momentum SGD and a cosine schedule with warmup, about
four minutes on two CPU cores, and reaches about 90% test accuracy. The run goes through
`training.runs.train_run`, the same code as ``zoo train``; its directory (``demo_out/`` by default)
ends up with ``eval.json``, ``confusion_matrix.png``, ``curves.png`` and the weights.

Running it again: an unfinished demo run of the same recipe (one that was interrupted) resumes from
its last checkpoint; anything else in the directory that is a run (a finished demo, another
recipe) is deleted and training starts fresh, so the demo always shows a whole training run.

The pretrained-weights issue will replace the training here with loading published weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import zoo

OUT_DIR = "demo_out"


def _demo_run():
    from training.recipes import Recipe, Schedule
    from training.runs import RunSpec

    spec = RunSpec(model="resnet20", dataset="fashion_mnist", options={"stage_depths": (2, 2, 2)})
    recipe = Recipe(optimizer="momentum", learning_rate=0.1, schedule=Schedule(kind="cosine", warmup_epochs=0.3),
                    epochs=3, batch_size=128, seed=0)
    return spec, recipe


def _prepare(out_dir: str, spec, recipe) -> bool:
    """Whether to resume the run in ``out_dir``; clears a run that is finished or of another recipe."""
    from training import runs

    saved = runs.saved_run(out_dir)
    if (saved is not None and not saved.finished and saved.recipe == recipe and saved.spec is not None
            and saved.spec.to_dict() == spec.resolve().to_dict()):
        print(f"Resuming the interrupted demo run in {out_dir}/ ({saved.describe()}).")
        return True
    if saved is not None or os.path.exists(os.path.join(out_dir, runs.RUN_FILE)):
        why = "finished" if saved is not None and saved.finished else "of another recipe or unfinished"
        print(f"Starting fresh: removing the previous demo run in {out_dir}/ ({why}).")
        shutil.rmtree(out_dir)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT_DIR, help=f"the run directory (default: {OUT_DIR})")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    families = zoo.list_families()
    print(f"keras-zoo {zoo.__version__}: {len(zoo.list_models())} models in {len(families)} families "
          f"({', '.join(f.name for f in families)}).")
    print("`zoo list` prints the table with params and FLOPs, `zoo info NAME` a model's card.\n")

    from training import runs

    spec, recipe = _demo_run()
    try:
        resume = _prepare(args.out, spec, recipe)
        from training.data import load_dataset

        train_info = load_dataset(spec.dataset, "train", batch_size=recipe.batch_size)[1]
        test_info = load_dataset(spec.dataset, "test", batch_size=recipe.batch_size)[1]
    except (OSError, ValueError) as err:  # no Fashion-MNIST source: the error lists those tried
        print(f"demo: error: {err}", file=sys.stderr)
        return 1

    options = ", ".join(f"{k}={v}" for k, v in spec.options.items())
    params = runs.build_model(spec).count_params()
    print(f"Training {spec.model} ({options}; {params:,} params) on Fashion-MNIST: {train_info.num_examples} train "
          f"images, {test_info.num_examples} test, from {train_info.source}.")
    print(f"Recipe: {recipe.epochs} epochs, optimizer {recipe.optimizer!r}, batch {recipe.batch_size}, learning rate "
          f"{recipe.learning_rate} ({recipe.schedule.warmup_epochs:g} epochs of warmup, then {recipe.schedule.kind} "
          "decay); validation on the test set after each epoch.\n")
    train_start = time.perf_counter()
    run = runs.train_run(spec, recipe=recipe, out_dir=args.out, resume=resume, command="python -m zoo.demo")
    trained = time.perf_counter() - train_start

    print(f"\nFinal model on the full Fashion-MNIST test set: {run.evaluation.summary()}")
    print(runs.per_class_table(run.evaluation))
    print(f"\nTraining and evaluation took {trained / 60:.1f} min; the demo {(time.perf_counter() - started) / 60:.1f} "
          "min in all.")
    print(f"Confusion matrix: {run.files['confusion_matrix']}")
    print(f"Training curves:  {run.files['curves']}")
    print(f"Weights and logs: {args.out}/ (final_weights.h5; TensorBoard: tensorboard --logdir {args.out}/logs)")
    options = " ".join(f"-o '{k}={str(v).replace(' ', '')}'" for k, v in spec.options.items())
    print(f"Evaluate again:   zoo eval {spec.model} --weights {run.files['final_weights']} --dataset {spec.dataset} "
          f"{options}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
