"""Publishing a finished ``zoo train`` run as the zoo's pretrained weights ``<arch>.<tag>`` (``zoo publish``).

The weights are re-evaluated by the project's own evaluation before anything is written, their metadata
records the command that reproduces them, and the registry's files are replaced together
(`zoo._weights._replace_files`): all of them or none, even if the process is killed.

    >>> publish_run("runs/resnet20_fm", tag="fashion_mnist", default=True)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from pathlib import Path

import zoo
from training.data import load_dataset
from training.loop import FINAL_WEIGHTS, RECIPE_FILE
from training.runs import COMMAND_FILE, EVAL_FILE, RUN_FILE, RunSpec, evaluate_weights
from zoo._files import locked
from zoo._flops import count_macs
from zoo._registry import get_spec
from zoo._weights import (_NAME, PUBLISHED_FASHION_MNIST, PretrainedWeights, Provenance, WeightsHead, WeightsInput,
                          WeightsMetrics, WeightsSource, _clear_cache, _finish_journal, _read_dir_entries,
                          _replace_files, metadata_text, predict_samples, sha256_file, weights_dir)

__all__ = ["EVAL_TOLERANCE", "publish_run"]

EVAL_TOLERANCE = 0.001  # 0.1 points of accuracy: publish refuses a run whose eval.json is further off
_RUN_FILES = (RUN_FILE, RECIPE_FILE, COMMAND_FILE, EVAL_FILE, FINAL_WEIGHTS)


def _required_file(run_dir: Path, name: str) -> Path:
    path = run_dir / name
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a finished `zoo train` run: it has no {name}. A run directory to "
                         f"publish holds {', '.join(_RUN_FILES)}")
    return path


def _train_command(lines: list[str], run_dir: Path) -> str:
    """The one ``zoo train`` line that reproduces the run; resumes must repeat it (plus ``--resume``)."""
    if not lines or not lines[0].startswith("zoo train "):
        raise ValueError(f"{run_dir}/command.txt does not start with a `zoo train ...` line (received "
                         f"{lines[0] if lines else 'an empty file'!r}); only runs of `zoo train` can be published")
    first = shlex.split(lines[0])
    for line in lines[1:]:
        if [a for a in shlex.split(line) if a != "--resume"] != first:
            raise ValueError(f"{run_dir} was resumed with other arguments ({line!r} after {lines[0]!r}), so no "
                             "single command reproduces it; train it again with one command")
    return lines[0]


def _eval_command(arch: str, tag: str, dataset: str, input_shape, native_shape) -> str:
    argv = ["zoo", "eval", arch, "--weights", f"{arch}.{tag}", "--dataset", dataset]
    if tuple(input_shape) != tuple(native_shape):
        argv += ["--input-shape", *map(str, input_shape)]
    return shlex.join(argv)


def publish_run(
    run_dir: str | os.PathLike,
    *,
    tag: str,
    default: bool = False,
    license: str = "Apache-2.0",
    notes: str = "",
    published_top1: float | None = None,
    published_source: str | None = None,
    overwrite: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> PretrainedWeights:
    """Publishes a finished ``zoo train`` run as pretrained weights ``<arch>.<tag>``.

    Re-evaluates ``final_weights.h5`` on the dataset's full test split with the project's evaluation
    (`training.runs.evaluate_weights`) and refuses when the run's ``eval.json`` differs by more than
    0.1 points or covers another number of examples. Once everything that can fail has succeeded
    (the metadata is complete), copies the weights to ``<out_dir>/<arch>.<tag>.h5``, writes
    ``<arch>.<tag>.json`` and, for a new default, the previous default's JSON without its flag: all
    of them or none, even if the process is killed meanwhile (`_replace_files`).

    Args:
        run_dir: the run directory (run.json, recipe.json, command.txt, eval.json, final_weights.h5).
        tag: lower_snake name of the weights, e.g. the dataset's name.
        default: make this the arch's default (the previous default stays, as a non-default tag).
            An arch's first weights are its default whatever this says.
        license: the weights' license.
        notes: a note for ``docs/pretrained.md``.
        published_top1: the published accuracy to compare with; by default the family's figure in
            `PUBLISHED_FASHION_MNIST` for Fashion-MNIST runs.
        published_source: where ``published_top1`` is published (required with it).
        overwrite: replace an existing ``arch.tag``.
        out_dir: the registry directory to write to (default: the package's ``zoo/weights``).

    Returns:
        The new entry's `PretrainedWeights`.

    Raises:
        ValueError: not a finished ``zoo train`` run, a fine-tuning run, an eval.json that the
            re-evaluation contradicts, or ``arch.tag`` exists and ``overwrite`` is False.

    Example:
        >>> publish_run("runs/resnet20_fm", tag="fashion_mnist", default=True)  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    if not isinstance(tag, str) or not _NAME.fullmatch(tag):
        raise ValueError(f"tag must be lower_snake_case, e.g. 'fashion_mnist'; received {tag!r}")
    if (published_top1 is None) != (published_source is None):
        raise ValueError("--published-top1 and --published-source go together; received "
                         f"{published_top1!r} and {published_source!r}")
    run = _read_run(run_dir)
    arch = get_spec(run.spec.model).name
    target = Path(out_dir) if out_dir is not None else weights_dir()
    name = f"{arch}.{tag}"

    def refuse_existing():
        if (target / f"{name}.json").exists() and not overwrite:
            raise ValueError(f"pretrained weights {name!r} exist in {target}; pass overwrite=True (--overwrite) to "
                             "replace them, or choose another tag")

    _finish_journal(target)  # a publish killed after its commit point: its entries are what this one sees
    refuse_existing()  # before the evaluation, and again under the lock
    # Everything that can fail comes first; the registry's files are replaced last, together.
    meta = _metadata(run, arch, tag, license=license, notes=notes, published_top1=published_top1,
                     published_source=published_source)
    # From reading the other entries to replacing the files, another publish into the registry waits: two
    # at once each saw the old default and both became defaults.
    target.mkdir(parents=True, exist_ok=True)
    with locked(target):
        _finish_journal(target)  # one killed after its commit point, meanwhile
        refuse_existing()
        siblings = _read_dir_entries(target, arch, exclude=name)
        meta = dataclasses.replace(meta, default=default or not any(m.default for m in siblings))
        demoted = [dataclasses.replace(m, default=False) for m in siblings if m.default and meta.default]
        metadata = {target / f"{m.name}.json": metadata_text(m).encode() for m in (meta, *demoted)}
        _replace_files(target, {target / meta.source.file: run.final_weights, **metadata})
    _clear_cache()
    return meta


@dataclasses.dataclass(frozen=True)
class _FinishedRun:
    """What a finished ``zoo train`` run directory holds that publishing reads."""

    directory: Path
    spec: RunSpec
    recipe: dict
    command: str  # the one `zoo train` line that reproduces it
    recorded: dict  # its eval.json
    final_weights: Path


def _read_run(run_dir: Path) -> _FinishedRun:
    """The run in ``run_dir``.

    Raises:
        ValueError: a file is missing, it is a fine-tuning run, or no single command reproduces it.
    """
    spec = RunSpec.from_dict(json.loads(_required_file(run_dir, RUN_FILE).read_text()))
    if spec.is_finetune:
        raise ValueError(f"{run_dir} is a fine-tuning run; only `zoo train` runs can be published for now")
    lines = [ln.strip() for ln in _required_file(run_dir, COMMAND_FILE).read_text().splitlines() if ln.strip()]
    return _FinishedRun(directory=run_dir, spec=spec,
                        recipe=json.loads(_required_file(run_dir, RECIPE_FILE).read_text()),
                        command=_train_command(lines, run_dir),
                        recorded=json.loads(_required_file(run_dir, EVAL_FILE).read_text()),
                        final_weights=_required_file(run_dir, FINAL_WEIGHTS))


def _reevaluate(run: _FinishedRun, full: RunSpec):
    """The run's final weights evaluated on the full test split, checked against its eval.json.

    Raises:
        ValueError: the two differ by more than `EVAL_TOLERANCE` or cover other examples.
    """
    result = evaluate_weights(full, weights=run.final_weights)
    recorded = run.recorded
    if recorded.get("num_examples") != result.num_examples or recorded.get("accuracy") is None or (
            abs(recorded["accuracy"] - result.accuracy) > EVAL_TOLERANCE):
        raise ValueError(f"{run.directory}/eval.json says accuracy {recorded.get('accuracy')!r} on "
                         f"{recorded.get('num_examples')!r} examples; re-evaluating final_weights.h5 on the full test "
                         f"split gives {result.accuracy:.4f} on {result.num_examples}. Accepted: within "
                         f"{EVAL_TOLERANCE * 100:.1f} points on the same examples. Not published")
    return result


def _metadata(run: _FinishedRun, arch: str, tag: str, *, license: str, notes: str, published_top1: float | None,
              published_source: str | None) -> PretrainedWeights:
    """The entry's metadata, measured by the project's own evaluation (not yet the default: the caller decides,
    from the registry's other entries)."""
    full = dataclasses.replace(run.spec, limit=None).resolve()
    result = _reevaluate(run, full)
    info = load_dataset(full.dataset, "test", batch_size=1, limit=1)[1]
    model = zoo.create_model(arch, weights=os.fspath(run.final_weights), input_shape=full.input_shape,
                             num_classes=full.num_classes, **full.options)
    model_input = WeightsInput(shape=full.input_shape, mean=info.mean, std=info.std)
    family = get_spec(arch).family
    if published_top1 is None and full.dataset == "fashion_mnist" and family.name in PUBLISHED_FASHION_MNIST:
        published_top1, published_source = PUBLISHED_FASHION_MNIST[family.name]
    final = run.final_weights
    return PretrainedWeights(
        arch=arch,
        tag=tag,
        default=False,
        source=WeightsSource(file=f"{arch}.{tag}.h5", sha256=sha256_file(final), size_bytes=final.stat().st_size),
        input=model_input,
        head=WeightsHead(num_classes=full.num_classes, class_names=result.class_names),
        provenance=Provenance(command=run.command, recipe=json.dumps(run.recipe, sort_keys=True),
                              seed=int(run.recipe["seed"]), dataset=full.dataset, split="train", options=full.options,
                              license=license, paper=f"{family.paper}, {family.year}, {family.url}"),
        metrics=WeightsMetrics(top1=result.accuracy, per_class_accuracy=result.per_class_accuracy, loss=result.loss,
                               num_examples=result.num_examples, params=int(model.count_params()),
                               flops=2 * count_macs(model),
                               eval_command=_eval_command(arch, tag, full.dataset, full.input_shape, info.image_shape)),
        published_top1=published_top1,
        published_source=published_source,
        sample_predictions=predict_samples(model, model_input, full.dataset),
        notes=notes,
    )
