"""The ``zoo`` command: list models, print a model's card, write the model docs, train, evaluate, fine-tune.

    $ zoo list 'resnet*' --exclude 'resnet1??'
    $ zoo info resnet18 --input-shape 32 32 3
    $ zoo docs --out docs/models.md --check
    $ zoo train resnet20 --dataset fashion_mnist --epochs 2 --out runs/r20
    $ zoo eval resnet20 --weights runs/r20/final_weights.h5 --dataset fashion_mnist
    $ zoo finetune resnet20 --weights runs/r20/final_weights.h5 --dataset digits --input-shape 28 28 1 \\
          --train-layers last:4 --epochs 3 --out runs/r20-digits
    $ zoo publish runs/r20 --tag fashion_mnist --default
    $ zoo eval resnet20 --weights resnet20.fashion_mnist --dataset fashion_mnist
    $ zoo export resnet20 --prune 0.8 --cluster 16 --quantize qat --out exports/r20

Thin by design: each subcommand parses its arguments and calls library functions (`zoo.list_models`,
`zoo.model_info`, `zoo._docs`, `zoo._weights`, `training.runs`). A subcommand is a pair of functions,
``_args_<name>(parser)`` and ``_cmd_<name>(args) -> int``, plus one row in `COMMANDS`; heavy imports
(TensorFlow, training, export) happen inside ``_cmd_<name>`` so ``zoo --help`` stays fast.

Exit codes: 0 success; 1 nothing matched, ``docs --check`` found a stale file or training diverged;
2 a bad name, option, value, file or directory, reported as one line on stderr (``zoo: error: ...``),
without a traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import zoo
from zoo._quiet import import_tensorflow
from export._choices import CALIBRATION_IMAGES, LR_SCHEDULES, QUANTIZE, STAGES

__all__ = ["COMMANDS", "build_parser", "main"]

PROG = "zoo"
USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}. See '{self.prog} --help'.\n")


def _fail(message: str, code: int = USAGE_ERROR) -> int:
    one_line = re.sub(r"\s*\n\s*", " ", message.strip())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


class _Shape(argparse.Action):
    """``--input-shape H W C`` as the tuple the library takes."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(values))


# -- zoo list ---------------------------------------------------------------------------------------


def _args_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", default=["*"],
                        help="glob patterns a name must match, any of them (default: all models)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PAT",
                        help="glob pattern of names to leave out; repeatable")
    parser.add_argument("--pretrained", action="store_true",
                        help="list the pretrained weights of the matching models instead, each with its own "
                             "architecture options, params and input (they may differ from the variant's)")


def _cmd_list(args: argparse.Namespace) -> int:
    from zoo._docs import models_table, pretrained_table
    from zoo._registry import get_spec

    for pattern in args.patterns:
        if not any(c in pattern for c in "*?["):
            get_spec(pattern)  # a plain name must exist: unknown ones fail with close matches
    names = zoo.list_models(args.patterns, exclude=args.exclude, pretrained=args.pretrained)
    if not names:
        query = " ".join(repr(p) for p in args.patterns)
        query += "".join(f" --exclude {p!r}" for p in args.exclude) + (" --pretrained" * args.pretrained)
        print(f"{PROG}: no models match {query}", file=sys.stderr)
        return 1
    if args.pretrained:
        weights = [f"{name}.{tag}" for name in names for tag in zoo.model_info(name).pretrained]
        print("\n".join(pretrained_table(weights)))
        return 0
    for line in models_table(names):
        print(line, flush=True)
    return 0


# -- zoo info ---------------------------------------------------------------------------------------


def _args_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered model name (see 'zoo list')")
    parser.add_argument("--input-shape", nargs=3, type=int, action=_Shape, metavar=("H", "W", "C"),
                        help="compute params and MACs at this input (default: the model's default input)")


def _cmd_info(args: argparse.Namespace) -> int:
    from zoo._docs import model_card

    print(model_card(zoo.model_info(args.name, input_shape=args.input_shape)))
    return 0


# -- zoo docs ---------------------------------------------------------------------------------------


DOC_PAGES = ("models", "pretrained")


def _args_docs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page", choices=DOC_PAGES, default="models",
                        help="models: the model list (docs/models.md, the default); pretrained: the shipped "
                             "weights and their accuracy (docs/pretrained.md)")
    parser.add_argument("--out", type=Path, metavar="PATH", help="write the markdown here (default: stdout)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if PATH differs from what would be generated")


def _cmd_docs(args: argparse.Namespace) -> int:
    from zoo._docs import GENERATE_COMMAND, models_markdown, pretrained_markdown

    if args.check and args.out is None:
        return _fail(f"--check needs --out PATH, the file to compare (e.g. docs/{args.page}.md)")
    text = models_markdown() if args.page == "models" else pretrained_markdown()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != text:
            what = "model list" if args.page == "models" else "pretrained weights page"
            state = "is missing" if current is None else f"is stale (it differs from the generated {what})"
            print(f"{PROG}: {args.out} {state}; regenerate it with `{GENERATE_COMMAND}`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    from zoo._files import write_text

    write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


# -- zoo train / finetune / eval --------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE a Python literal (``(2,2,2)``, ``0.1``, ``True``), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. stage_depths=(2,2,2); received {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, value


def _options(pairs: list[tuple[str, object]] | None) -> dict[str, object]:
    options: dict[str, object] = {}
    for key, value in pairs or ():
        if key in options:
            raise ValueError(f"option {key!r} given twice (-o {key}={options[key]!r} and -o {key}={value!r})")
        options[key] = value
    return options


def _add_model_args(parser: argparse.ArgumentParser, *, weights: str | None, shape_default: str = "the dataset's "
                    "image shape", options_default: str = "") -> None:
    parser.add_argument("name", help="a registered model name (see 'zoo list')")
    if weights:
        parser.add_argument("--weights", required=True, metavar="PATH", help=weights)
    parser.add_argument("--dataset", required=True, metavar="NAME",
                        help="fashion_mnist, digits, synthetic, or a TFDS image classification dataset")
    parser.add_argument("--input-shape", nargs=3, type=int, action=_Shape, metavar=("H", "W", "C"),
                        help=f"the model's input (default: {shape_default}; images are resized to H x W)")
    parser.add_argument("-o", "--option", dest="options", action="append", type=_key_value, metavar="KEY=VALUE",
                        help="an architecture option (see 'zoo info NAME'), the value a Python literal; "
                             f"repeatable{options_default}")
    parser.add_argument("--limit", type=int, metavar="N", help="use only the first N examples of each split")


# What the shipped recipes a command defaults to are, for its --help.
_RECIPE_SAYS = {"finetune": "Adam at 1e-3 for 3 epochs (the seed's lower learning rate for fine-tuning)"}


def _add_training_args(parser: argparse.ArgumentParser, *, recipe: str | None = None) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the run directory: checkpoints, logs, weights, eval.json and the PNGs")
    parser.add_argument("--epochs", type=int, metavar="N", help="epochs to train (default: the recipe's)")
    default = f"; default: {recipe}, {_RECIPE_SAYS[recipe]}" if recipe else "; default: training.Recipe()'s"
    parser.set_defaults(default_recipe=recipe)
    parser.add_argument("--recipe", metavar="FILE",
                        help="a recipe as JSON (a run's recipe.json) or a shipped recipe's name "
                             f"(resnet20_fashion_mnist); flags override it{default}")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in DIR (same command; --epochs may grow); without it, a DIR "
                             "holding a run is refused")
    parser.add_argument("--batch-size", type=int, metavar="B")
    parser.add_argument("--lr", type=float, metavar="LR", help="peak learning rate")
    parser.add_argument("--optimizer", metavar="OPT",
                        help="sgd, momentum, nesterov, adagrad, rmsprop, adam, or a Keras optimizer name")
    parser.add_argument("--augment", metavar="AUG", help="none, flip, crop, crop_flip or crop_flip_erase")
    parser.add_argument("--seed", type=int, metavar="S")
    parser.add_argument("--teacher", metavar="ARCH.TAG",
                        help="distill from these shipped pretrained weights (their softened outputs and the labels)")


def _run(args: argparse.Namespace, spec) -> int:
    """Trains ``spec`` by the recipe the flags describe, into ``--out``; shared by train and finetune."""
    from training import runs

    saved = runs.saved_run(args.out)
    if saved is not None and not args.resume:
        return _fail(f"{args.out} holds a run ({saved.describe()}); add --resume to continue it, or choose a new "
                     "--out directory")
    if saved is None and args.resume:
        return _fail(f"--resume: {args.out} holds no run to resume; drop --resume to start one there")
    # Without --recipe: a resumed run's own recipe (whatever the defaults are now), else the command's default
    # (a shipped recipe's file, which no file of that name in the working directory can stand in for).
    base = args.recipe or (os.path.join(args.out, runs.RECIPE_FILE) if saved is not None else
                           args.default_recipe and runs.shipped_recipes()[args.default_recipe])
    recipe = runs.load_recipe(base, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                              optimizer=args.optimizer, augment=args.augment, seed=args.seed)
    run = runs.train_run(spec, recipe=recipe, out_dir=args.out, resume=args.resume,
                         command=shlex.join([PROG, *args.argv]))
    print(f"\n{spec.model} on {spec.dataset} test: {run.evaluation.summary()}")
    print(runs.per_class_table(run.evaluation))
    written = [run.files[k] for k in ("eval", "confusion_matrix", "curves", "final_weights") if k in run.files]
    print(f"wrote {', '.join(written)}")  # no curves.png when the run has no recorded history
    return 0


def _args_train(parser: argparse.ArgumentParser) -> None:
    _add_model_args(parser, weights=None)
    _add_training_args(parser)


def _cmd_train(args: argparse.Namespace) -> int:
    from training.runs import RunSpec

    return _run(args, RunSpec(model=args.name, dataset=args.dataset, options=_options(args.options),
                              input_shape=args.input_shape, limit=args.limit,
                              teacher=args.teacher))


def _shipped_or_file(args: argparse.Namespace):
    """The shipped weights ``--weights`` names (checked first: `zoo._weights.PretrainedWeights`), or None for a file
    or checkpoint that exists.

    Raises:
        ValueError: neither, naming the model's shipped tags.
    """
    from zoo import _weights

    pretrained = _weights.resolve(args.name, args.weights)
    if pretrained is not None or os.path.exists(args.weights) or os.path.exists(f"{args.weights}.index"):
        return pretrained
    tags = _weights.tags(args.name)
    names = f"; nor pretrained weights of {args.name} ({', '.join(['DEFAULT', *tags])})" if tags else ""
    raise ValueError(f"--weights {args.weights}: no such file (nor checkpoint {args.weights}.index){names}")


def _args_finetune(parser: argparse.ArgumentParser) -> None:
    _add_model_args(parser, weights="weights of the source model: shipped pretrained weights (DEFAULT, a tag, or "
                                    "ARCH.TAG), an .h5 file or a checkpoint prefix (a run's checkpoints/ckpt-N too)",
                    options_default="; for a run's file, over the options its run.json records")
    parser.add_argument("--source-classes", type=int, metavar="K",
                        help="classes of the source model's head (default: as the run.json of the --weights run "
                             "records, else 10)")
    parser.add_argument("--num-classes", type=int, metavar="K", help="classes of the new head (default: the dataset's)")
    parser.add_argument("--train-layers", default="head", metavar="WHICH",
                        help="head (default), last:N (the last N layers with weights, and the head) or all")
    _add_training_args(parser, recipe="finetune")


def _cmd_finetune(args: argparse.Namespace) -> int:
    from training.runs import RunSpec
    pretrained = _shipped_or_file(args)
    options, source_classes = _options(args.options), args.source_classes
    source = None if pretrained is not None else _run_beside(args)
    if source is not None:  # the source model as its run built it: its options and classes
        options = {**source.options, **options}
        source_classes = source.num_classes if source_classes is None else source_classes
    return _run(args, RunSpec(model=args.name, dataset=args.dataset, options=options,
                              input_shape=args.input_shape, limit=args.limit,
                              num_classes=args.num_classes, source_weights=args.weights,
                              source_classes=source_classes, train_layers=args.train_layers,
                              teacher=args.teacher))


def _run_beside(args: argparse.Namespace):
    """The `training.runs.RunSpec` of the ``--weights`` file's run (its ``run.json``, `training.runs.run_file`),
    resolved (its shape and classes from its own dataset), with the options shipped source weights apply
    (`training.runs.source_options`) and without its teacher (it trained the model; building the model does not
    need it); None when there is none.

    Raises:
        ValueError: it records another model than the command's.
    """
    import dataclasses

    from training import runs

    spec = runs.spec_beside(args.weights)
    if spec is None:
        return None
    run_file = runs.run_file(args.weights)
    if spec.model != args.name:
        raise ValueError(f"{run_file} records a {spec.model} run; zoo {args.command} {args.name} builds {args.name} "
                         f"(received --weights {args.weights}). Accepted: weights of a `zoo train {args.name}` or "
                         f"`zoo finetune {args.name}` run")
    return runs.source_options(dataclasses.replace(spec, teacher=None).resolve())


def _weights_run(args: argparse.Namespace, dataset: str | None):
    """The run a weights file came from (`_run_beside`), with the command's ``--input-shape``,
    ``--num-classes`` and ``-o`` over it and ``dataset`` (default: the run's); None when the file has no
    ``run.json`` beside it. A fine-tuning run's model is built as the run built it: those flags may only
    repeat what it records."""
    import dataclasses

    from training import runs
    from zoo._checks import tuples

    spec = _run_beside(args)
    if spec is None:
        return None
    run_file = runs.run_file(args.weights)
    shape, classes, options = args.input_shape, args.num_classes, _options(args.options)
    if spec.is_finetune:
        given = {**{f"-o {k}": (tuples(v), spec.options.get(k)) for k, v in options.items()},
                 **{flag: (value, recorded) for flag, value, recorded in (
                     ("--input-shape", shape, spec.input_shape), ("--num-classes", classes, spec.num_classes))
                    if value is not None}}
        other = [f"{flag} {value!r} (the run's: {recorded!r})" for flag, (value, recorded) in given.items()
                 if value != recorded]
        if other:
            raise ValueError(f"{run_file} records a fine-tuning run, whose model zoo {args.command} builds as the run "
                             f"did; received {', '.join(other)}. Leave them out")
        return dataclasses.replace(spec, dataset=dataset or spec.dataset)
    return dataclasses.replace(spec, input_shape=shape or spec.input_shape,
                               num_classes=spec.num_classes if classes is None else classes,
                               options={**spec.options, **options}, dataset=dataset or spec.dataset)


def _args_eval(parser: argparse.ArgumentParser) -> None:
    _add_model_args(parser, weights="the weights to evaluate: an .h5 file, a checkpoint prefix, or shipped pretrained "
                                    "weights (DEFAULT, a tag, or ARCH.TAG; see 'zoo list --pretrained'). A file of a "
                                    "zoo train or finetune run (or one of its checkpoints/ckpt-N) is built as the "
                                    "run.json beside it (above them) records",
                    shape_default="as the run.json of the --weights run records, else the dataset's image shape",
                    options_default="; for a run's file, over the options its run.json records")
    parser.add_argument("--split", default="test", help="the split to evaluate (default: test)")
    parser.add_argument("--num-classes", type=int, metavar="K",
                        help="the model's classes (default: as the run.json of the --weights run records, else the "
                             "dataset's)")
    parser.add_argument("--batch-size", type=int, default=256, metavar="B")
    parser.add_argument("--out", metavar="DIR", help="also write eval.json and confusion_matrix.png here")


def _cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses

    from training import runs
    pretrained = _shipped_or_file(args)
    spec = None if pretrained is not None else _weights_run(args, args.dataset)
    if spec is None:
        spec = runs.RunSpec(model=args.name, dataset=args.dataset, options=_options(args.options),
                            input_shape=args.input_shape, num_classes=args.num_classes)
    spec = dataclasses.replace(spec, limit=args.limit)
    result = runs.evaluate_weights(spec, weights=args.weights, split=args.split, batch_size=args.batch_size,
                                   out_dir=args.out)
    print(f"{args.name} on {args.dataset} {args.split}: {result.summary()}")
    print(runs.per_class_table(result))
    if args.out:
        print(f"wrote {os.path.join(args.out, runs.EVAL_FILE)}, {os.path.join(args.out, runs.CONFUSION_PNG)}")
    return 0


# -- zoo publish ------------------------------------------------------------------------------------


def _args_publish(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished `zoo train` run directory")
    parser.add_argument("--tag", required=True, help="the weights' name among the model's, e.g. fashion_mnist")
    parser.add_argument("--default", action="store_true",
                        help="make them the model's default weights (a model's first weights always are)")
    parser.add_argument("--license", default="Apache-2.0", help="the weights' license (default: Apache-2.0)")
    parser.add_argument("--notes", default="", help="a note shown in docs/pretrained.md")
    parser.add_argument("--published-top1", type=float, metavar="ACC",
                        help="the published accuracy to compare with, in [0, 1] (default: the family's figure in "
                             "the Fashion-MNIST benchmark table for Fashion-MNIST runs)")
    parser.add_argument("--published-source", metavar="TEXT", help="where --published-top1 is published")
    parser.add_argument("--overwrite", action="store_true", help="replace existing weights of the same name")
    parser.add_argument("--weights-dir", type=Path, metavar="DIR",
                        help="the registry directory to write to (default: the package's zoo/weights)")


def _cmd_publish(args: argparse.Namespace) -> int:
    from training.publish import publish_run
    from zoo._weights import weights_dir

    meta = publish_run(args.run_dir, tag=args.tag, default=args.default, license=args.license, notes=args.notes,
                       published_top1=args.published_top1, published_source=args.published_source,
                       overwrite=args.overwrite, out_dir=args.weights_dir)
    where = args.weights_dir or weights_dir()
    published = f" (published {meta.published_top1:.1%})" if meta.published_top1 is not None else ""
    print(f"published {meta.name}{' (default)' if meta.default else ''}: test top-1 {meta.metrics.top1:.2%}"
          f"{published} on {meta.metrics.num_examples} examples, {meta.metrics.params:,} params")
    print(f"wrote {where / meta.source.file} ({meta.source.size_bytes:,} bytes, sha256 {meta.source.sha256})")
    print(f"wrote {where / (meta.name + '.json')}; regenerate the docs with `make docs`")
    return 0


# -- zoo export -------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\+?\d+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text!r}")
    return int(text)


def _m_by_n(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if not match or not 0 < int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected M:N with 0 < M < N, such as 2:4; received {text!r}")
    return int(match[1]), int(match[2])


def _glob_sparsity(text: str) -> tuple[str, float]:
    glob, sep, value = text.rpartition("=")
    try:
        if not sep or not glob or not 0 <= float(value) < 1:
            raise ValueError
        return glob, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GLOB=SPARSITY with SPARSITY in [0, 1), such as 'fc*=0.95'; "
                                         f"received {text!r}") from None


def _stage_epochs(pairs) -> dict[str, int]:
    out = {}
    for stage, value in pairs or ():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"--epochs {stage}=N needs a whole number of epochs; received {value!r}")
        out[stage] = value
    return out


# `export.pipeline.Plan`'s parameters as `zoo export` names them in errors (`pipeline.parameter_names`);
# the stage names (low_rank, ...) stay: they are --epochs' keys.
_PLAN_FLAGS = {"prune": "--prune", "m_by_n": "--m-by-n", "cluster": "--cluster", "low_rank": "--low-rank",
               "quantize": "--quantize", "prune_layers": "--prune-layer", "epochs": "--epochs",
               "epochs_of": "--epochs {stage}=N", "distill": "--distill", "schedule": "--lr-schedule",
               "integer_io": "--integer-io", "plan": "the variant"}


def _args_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered model name (see 'zoo list')")
    parser.add_argument("--weights", default="DEFAULT", metavar="W",
                        help="shipped pretrained weights (DEFAULT, a tag, ARCH.TAG), an .h5 file or a checkpoint "
                             "prefix (default: DEFAULT); a zoo train or finetune run's file (or checkpoints/ckpt-N) is "
                             "built as its run.json records")
    parser.add_argument("--dataset", metavar="NAME", help="fine-tuning, calibration and test data (default: the "
                                                          "weights' dataset, or the run's for a run's file, else "
                                                          "fashion_mnist)")
    parser.add_argument("-o", "--option", dest="options", action="append", type=_key_value, metavar="KEY=VALUE",
                        help="an architecture option for a weights file's model (pretrained weights apply theirs)")
    parser.add_argument("--input-shape", nargs=3, type=int, action=_Shape, metavar=("H", "W", "C"),
                        help="a weights file's model input (default: its run.json's, else the model's default)")
    parser.add_argument("--num-classes", type=int, metavar="K",
                        help="a weights file's model classes (default: its run.json's, else the model's default)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the .tflite files and export.json go")
    parser.add_argument("--prune", type=float, metavar="S", help="magnitude pruning to sparsity S, e.g. 0.8")
    parser.add_argument("--m-by-n", type=_m_by_n, metavar="M:N", help="structured sparsity instead, e.g. 2:4")
    parser.add_argument("--cluster", type=int, metavar="K", help="weight sharing: K clusters per kernel, e.g. 16")
    parser.add_argument("--low-rank", type=float, metavar="E", help="truncated SVD of Dense layers keeping energy E")
    parser.add_argument("--quantize", default="none", choices=QUANTIZE,
                        help="TFLite quantization: post-training fp16, dynamic range or full int8, or QAT int8")
    parser.add_argument("--integer-io", action="store_true",
                        help="with --quantize int8 or qat: uint8 pixels in and int8 logits out (integer-only "
                             "accelerators) instead of float32")
    parser.add_argument("--prune-layer", dest="prune_layers", action="append", type=_glob_sparsity, metavar="GLOB=S",
                        help="a per-layer sparsity overriding --prune for layers matching GLOB, e.g. 'fc*=0.97'")
    parser.add_argument("--epochs", dest="stage_epochs", action="append", type=_key_value, metavar="STAGE=N",
                        help=f"fine-tuning epochs of a stage ({', '.join(STAGES)}), e.g. prune=3 (default 1)")
    parser.add_argument("--distill", action="store_true",
                        help="fine-tune on the float model's soft targets too (knowledge distillation)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                        help="each fine-tuning stage's learning rate: constant (default) or decaying as a cosine")
    parser.add_argument("--deep-compression", action="store_true",
                        help="the model family's deep-compression plan (prune, 16 clusters, QAT int8; see docs/export.md)")
    parser.add_argument("--all", action="store_true",
                        help="every standard variant (float32, fp16, dynamic, int8, QAT, pruned, clustered, combined) "
                             "and the deep-compression plan")
    parser.add_argument("--saved-model", action="store_true", help="also write the float SavedModel (serving signature)")
    parser.add_argument("--finetune-steps", type=_positive_int, metavar="N",
                        help="limit each fine-tuning stage to N steps")
    parser.add_argument("--test-limit", type=_positive_int, metavar="N",
                        help="check parity on the first N test images only")
    parser.add_argument("--calibration", type=_positive_int, metavar="N",
                        help=f"training images that calibrate int8 conversion (default {CALIBRATION_IMAGES})")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.5, metavar="PT",
                        help="fail when test accuracy falls by more than PT points (default: 0.5)")


def _export_source(args: argparse.Namespace):
    """The model `zoo export` compresses, its shipped weights' metadata (None for a file) and the dataset.

    A weights file's model takes ``--input-shape``, ``--num-classes`` and ``-o`` options, else what the
    ``run.json`` beside the file records (`_weights_run`; a fine-tuning run's model is built as the run
    built it), else the model's defaults.
    """
    from training import runs
    from training.runs import RUN_FILE

    meta = _shipped_or_file(args)
    shape, classes = args.input_shape, args.num_classes
    if meta is not None:
        if classes not in (None, meta.head.num_classes):  # its classifier would be untrained
            raise ValueError(f"--num-classes {classes}: the shipped weights {meta.name} have "
                             f"{meta.head.num_classes} classes. Accepted: --num-classes for a weights file's model "
                             f"(fine-tune for new classes: zoo finetune {args.name} --weights {meta.name} ...)")
    elif (spec := _weights_run(args, args.dataset)) is not None:
        model = runs.build_model(spec, weights=args.weights)
        model.trainable = True  # a fine-tuning run's frozen layers: export fine-tunes the whole model
        return model, meta, spec.dataset
    build = {key: value for key, value in (("input_shape", shape), ("num_classes", classes)) if value}
    try:
        model = zoo.create_model(args.name, weights=args.weights, **build, **_options(args.options))
    except ValueError as error:
        if meta is not None or build:
            raise
        raise ValueError(f"{error} (--weights {args.weights} was loaded into {args.name} at its default input "
                         "shape and classes: give --input-shape and --num-classes, or keep the training run's "
                         f"{RUN_FILE} beside the file)") from error
    dataset = args.dataset or (meta.provenance.dataset if meta is not None else "fashion_mnist")
    return model, meta, dataset


def _cmd_export(args: argparse.Namespace) -> int:
    from export import pipeline, tflite

    custom = [flag for flag, given in (
        ("--prune", args.prune is not None), ("--m-by-n", args.m_by_n), ("--cluster", args.cluster is not None),
        ("--low-rank", args.low_rank is not None), ("--prune-layer", args.prune_layers),
        ("--epochs", args.stage_epochs), ("--distill", args.distill), ("--lr-schedule", args.lr_schedule),
        ("--integer-io", args.integer_io), ("--quantize", args.quantize != "none")) if given]
    if (args.all or args.deep_compression) and custom:
        flag = "--all" if args.all else "--deep-compression"
        return _fail(f"{flag} exports preset variants; received {', '.join(custom)} too. Accepted: {flag} alone, "
                     "or a custom variant's flags without it")
    if not args.max_accuracy_drop >= 0:  # NaN too: every variant would fail
        return _fail(f"--max-accuracy-drop must be a number of points >= 0; received {args.max_accuracy_drop}")
    family = zoo.model_info(args.name).family
    if args.all or args.deep_compression:
        deep = (pipeline.deep_compression_plan(family),)
        plans = (*pipeline.STANDARD_PLANS, *deep) if args.all else deep
    else:
        try:
            with pipeline.parameter_names(_PLAN_FLAGS):
                plans = (pipeline.named_plan(prune=args.prune, m_by_n=args.m_by_n, cluster=args.cluster,
                                             low_rank=args.low_rank, quantize=args.quantize,
                                             prune_layers=tuple(args.prune_layers or ()),
                                             epochs=_stage_epochs(args.stage_epochs), distill=args.distill,
                                             schedule=args.lr_schedule, integer_io=args.integer_io),)
        except (TypeError, ValueError) as error:
            return _fail(str(error))
    # Options no variant would use are refused, as the plans refuse theirs.
    if args.finetune_steps is not None and not any(plan.trains for plan in plans):
        return _fail(f"--finetune-steps limits fine-tuning; {plans[0].name} ({plans[0].describe()}) has none")
    if args.calibration is not None and not any(plan.tflite_quantization == "int8" for plan in plans):
        return _fail(f"--calibration calibrates int8 conversion; {plans[0].name} ({plans[0].describe()}) has none "
                     "(--quantize int8 or qat)")
    model, meta, dataset = _export_source(args)
    shape = tuple(model.input_shape[1:])
    data = pipeline.load_export_data(dataset, test_limit=args.test_limit,
                                     representative=args.calibration or CALIBRATION_IMAGES,
                                     input_shape=shape[:2], channels=shape[2])
    select = tflite.select_ops(zoo.strip_training_outputs(model))
    print(f"TFLite builtins cover every op of {args.name}" if not select else
          f"{args.name} needs TF Select for: {', '.join(select)} (conversion will fail without allow_select_ops)")
    if meta is not None and dataset != meta.provenance.dataset:
        print(f"note: {meta.name} was trained on {meta.provenance.dataset}; its variants are checked and "
              f"normalized on {dataset}, whose classes ({', '.join(data.class_names[:3])}, ...) the labels are "
              f"taken for (fine-tune on {dataset} first for a model of its classes: zoo finetune)")
    if args.calibration is not None and len(data.representative) < args.calibration:
        print(f"--calibration {args.calibration}: {dataset}'s training split has {len(data.representative):,} "
              "images; int8 is calibrated on all of them")
    weights = meta.name if meta is not None else args.weights
    report = pipeline.ExportReport(args.out, model, name=args.name, weights=weights, data=data, dataset=dataset)
    failed = False
    for plan in plans:
        try:
            result = pipeline.export_variant(model, plan, data=data, out_dir=args.out,
                                             finetune_steps=args.finetune_steps,
                                             max_accuracy_drop=args.max_accuracy_drop)
        except tflite.ParityError as error:
            failed = True
            report.fail(plan.name, error)
            print(f"{plan.name:28s} FAILED {error}", file=sys.stderr)
            continue
        report.add(result)
        print(f"{plan.name:28s} {result.gzip_bytes:>10,} B gzip'd  {result.compression:6.1f}x  "
              f"{result.parity.summary()}  {result.latency_ms_batch1:.3f} ms/img")
    if args.saved_model:
        path = _export_saved_model(args, model, meta, data, dataset)
        report.set("saved_model", os.path.basename(path))
        print(f"wrote {path}")
    print(f"wrote {report.path}")
    return 1 if failed else 0


def _export_saved_model(args: argparse.Namespace, model, meta, data, dataset: str) -> str:
    """``--saved-model``: the model without its training-only outputs, normalizing by ``data``'s statistics as the
    TFLite variants, their checks and ``zoo eval`` do (for shipped weights' own dataset, those they were trained
    with), with the weights' class names and sha256 when known; returns its path."""
    from export.saved_model import export_saved_model
    from zoo._weights import sha256_file

    served = zoo.strip_training_outputs(model)
    if meta is not None:
        names, sha256 = meta.head.class_names, meta.source.sha256
    else:
        names = data.class_names if len(data.class_names) == served.output_shape[-1] else None
        sha256 = sha256_file(args.weights) if os.path.isfile(args.weights) else None  # None: a checkpoint
    return export_saved_model(served, Path(args.out) / "saved_model", mean=data.mean, std=data.std, scale=data.scale,
                              class_names=names, metadata={"weights": meta.name if meta is not None else args.weights,
                                                           "sha256": sha256, "model": args.name, "dataset": dataset})


# -- the command table ------------------------------------------------------------------------------


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# In the order `zoo --help` lists them. A new subcommand (train, eval, finetune, export) adds its
# `_args_<name>` and `_cmd_<name>` and a row here.
COMMANDS: dict[str, Command] = {
    "list": Command("list models: params, MACs/FLOPs, default input, paper year", _args_list, _cmd_list),
    "info": Command("print a model's card: paper, counts, published params, options", _args_info, _cmd_info),
    "docs": Command("write (or --check) the markdown docs: docs/models.md, or --page pretrained", _args_docs,
                    _cmd_docs),
    "train": Command("train a model on a dataset into a run directory (resumable), then evaluate it",
                     _args_train, _cmd_train),
    "eval": Command("evaluate weights on a dataset split: accuracy, loss, per-class accuracy", _args_eval,
                    _cmd_eval),
    "finetune": Command("replace a trained model's head and train it on a new dataset", _args_finetune,
                        _cmd_finetune),
    "publish": Command("publish a finished training run as pretrained weights (re-evaluated, sha256, metadata)",
                       _args_publish, _cmd_publish),
    "export": Command("compress and convert a model to TFLite (prune, cluster, quantize), verified against the float "
                      "model", _args_export, _cmd_export),
}

_EPILOG = """\
examples:
  zoo list 'resnet*' --exclude 'resnet1??'
  zoo info resnet18 --input-shape 32 32 3
  zoo docs --out docs/models.md --check
  zoo docs --page pretrained --out docs/pretrained.md
  zoo train resnet20 --dataset fashion_mnist --epochs 2 --out runs/r20
  zoo eval resnet20 --weights runs/r20/final_weights.h5 --dataset fashion_mnist
  zoo publish runs/r20 --tag fashion_mnist --default
  zoo eval resnet20 --weights resnet20.fashion_mnist --dataset fashion_mnist
  zoo export resnet20 --prune 0.8 --cluster 16 --quantize qat --out exports/r20

exit codes: 0 ok; 1 nothing matched, docs --check found a stale file, or training diverged;
2 bad name, option, value, file or directory (one line; ZOO_DEBUG=1 raises it with its traceback)"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per row of `COMMANDS`.

    Example:
        >>> build_parser().parse_args(["info", "resnet18", "--input-shape", "32", "32", "3"]).input_shape
        (32, 32, 3)
    """
    parser = _Parser(
        prog=PROG,
        description="keras-zoo: the CS231n case-study models in tf_keras, by name.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {zoo.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``zoo`` command line and returns its exit code.

    Example:
        >>> main(["list", "resnet18"])  # doctest: +SKIP
        name      family  params   MACs  FLOPs  input      year
        resnet18  resnet   11.7M  1.82G  3.64G  224x224x3  2015
        0
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, usage errors: argparse has printed them
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # command.txt records it
    import_tensorflow()  # every command needs it (the registry builds models); its start-up notices dropped
    debug = os.environ.get("ZOO_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")  # a traceback
    try:
        return COMMANDS[args.command].run(args)
    except BrokenPipeError:  # `zoo list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError) as err:  # the library's "received X, accepted Y" errors
        if debug:
            raise
        return _fail(str(err))
    except (OSError, ImportError) as err:  # a missing file or dataset source, a missing optional package
        if debug:
            raise
        return _fail(f"{type(err).__name__}: {err}" if isinstance(err, ImportError) else str(err))
    except FloatingPointError as err:  # training.TrainingDiverged
        return _fail(str(err), code=1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
