"""Training throughput: the shared loop against plain ``model.fit``, the fp32 matmul rate, every family.

Issue 3, item 9. Run from the repository root::

    .venv/bin/python benchmarks/train_throughput.py           # full, about 20 minutes
    .venv/bin/python benchmarks/train_throughput.py --quick   # a smoke run, under 3 minutes

It prints and writes (``--json``, ``--docs``; defaults below):

1. **Loop vs fit.** ``training.fit`` (the recipe's defaults: the seed's SGD+momentum, batch 128)
   against what a user writes, ``model.compile(keras.optimizers.SGD(momentum=0.9), ...)`` and
   ``model.fit`` on ``from_tensor_slices(...).shuffle(...).batch(128).prefetch(AUTOTUNE)``, on the
   same model (ResNet-20, 28x28x1, 10 classes), the same data (Fashion-MNIST's train split, or
   synthetic data when it is not installed) and batch, alternately in one process: loop, fit, loop,
   fit, ... Each round builds a fresh model, runs ``warmup`` steps (tracing, the first executions,
   the input pipeline filling up) and then times ``steps`` steps. Per round: images/s and CPU
   utilisation (process CPU seconds / wall seconds: 2.0 is both cores busy, about 1.0 the "one busy
   core" mode), and how much CPU other processes took meanwhile (from ``/proc/stat``).
   Then the same comparison across fresh processes (``--processes`` pairs of a loop process and a
   fit process), where a state a process falls into at start-up would show.
2. **Candidates** for the loop (``steps_per_execution``, XLA, thread pools), each measured
   alternately against the loop as it is. The loop is unchanged: compile options are injected
   here for the measurement only, and thread settings are measured in a child process.
3. **Matmul rate.** A chain of 2048x2048 float32 matmuls in a ``tf.function``, in GFLOP/s, and the
   share of it that ResNet-20 training reaches, with training FLOPs per image taken as
   3 x forward FLOPs (forward, backward to the activations, backward to the weights; the usual
   convention, e.g. Kaplan et al. 2020), forward FLOPs = 2 x MACs from `zoo.model_info`.
4. **Families.** Images/s of the shared loop for one small variant per family at 28x28x1.

Timings are steady-state: a round's clock runs from the end of its last warm-up step to the end of
its last timed step, so tracing, checkpoints at epoch end and pipeline start-up are not in it.
In the alternating comparisons (loop vs fit, the candidates) Python's garbage collector runs before
each round and is off during it (as in ``timeit``); the family table's single rounds leave it on.
Speed targets live here, never in tests (the tests only smoke-test `measure_loop`/`measure_plain`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import zoo  # noqa: E402  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)

__all__ = [
    "Measurement",
    "compare",
    "family_sweep",
    "main",
    "matmul_rate",
    "measure_candidates",
    "measure_loop",
    "measure_ceiling",
    "measure_plain",
    "measure_processes",
    "paired_ratio",
    "targets",
    "write_markdown",
]

DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results", "train_throughput.json")
DEFAULT_DOCS = os.path.join(ROOT, "docs", "train_throughput.md")

MODEL = "resnet20"
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
BATCH_SIZE = 128
# Below this many busy cores (process CPU s / wall s) a round counts as "one busy core": a healthy
# ResNet-20 step keeps both cores near 2.0; the degenerate mode sits near 1.0.
ONE_CORE_THRESHOLD = 1.4
# Other processes busier than this many cores during a round make its figure noisy (reported, kept).
CONTENDED_THRESHOLD = 0.25
# Training FLOPs per image = TRAINING_FLOPS_FACTOR x forward FLOPs (forward + two backward passes).
TRAINING_FLOPS_FACTOR = 3
TARGET_RATIO = 1.05
TARGET_MATMUL_SHARE = 0.70


# -- one measurement -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One timed round.

    Attributes:
        runner: what ran (``"loop"``, ``"fit"``, or a candidate's name).
        images_per_second: timed steps x batch size / wall seconds.
        cpu_utilisation: this process's CPU seconds / wall seconds over the timed steps (cores busy).
        others_cpu: cores the rest of the machine kept busy meanwhile (None without ``/proc/stat``).
        steps: timed steps.
        seconds: wall seconds of the timed steps.
        batch_size: examples per step.
    """

    runner: str
    images_per_second: float
    cpu_utilisation: float
    others_cpu: float | None
    steps: int
    seconds: float
    batch_size: int

    @property
    def one_core(self) -> bool:
        """Fewer than `ONE_CORE_THRESHOLD` cores busy while at least half a core sat idle.

        When other processes take the cores, a low utilisation is contention, not the one-core mode.
        """
        if self.cpu_utilisation >= ONE_CORE_THRESHOLD:
            return False
        return self.others_cpu is None or (os.cpu_count() or 1) - self.cpu_utilisation - self.others_cpu >= 0.5

    @property
    def contended(self) -> bool:
        """Other processes kept more than `CONTENDED_THRESHOLD` cores busy: the figure is noisy."""
        return self.others_cpu is not None and self.others_cpu > CONTENDED_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "one_core": self.one_core, "contended": self.contended}


def _machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent not idle, from ``/proc/stat`` (Linux only)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _step_timer(*, warmup: int, steps: int, batch_size: int, runner: str):
    """A Keras callback that times ``steps`` steps after ``warmup`` and then stops training."""
    import tf_keras as keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True  # it reads no logs: do not make Keras convert them for it
            self.start = None
            self.result: Measurement | None = None

        def on_train_batch_end(self, batch, logs=None):
            # With steps_per_execution > 1 Keras calls this once per execution, with the last step's index.
            done = batch + 1
            now, cpu, busy = time.perf_counter(), time.process_time(), _machine_busy_seconds()
            if self.start is None:
                if done >= warmup:
                    self.start = (done, now, cpu, busy)
                return
            start_done, start_wall, start_cpu, start_busy = self.start
            if done - start_done >= steps and self.result is None:
                wall = now - start_wall
                others = None
                if busy is not None and start_busy is not None:
                    others = max(0.0, (busy - start_busy) - (cpu - start_cpu)) / wall
                self.result = Measurement(
                    runner=runner,
                    images_per_second=(done - start_done) * batch_size / wall,
                    cpu_utilisation=(cpu - start_cpu) / wall,
                    others_cpu=others,
                    steps=done - start_done,
                    seconds=wall,
                    batch_size=batch_size,
                )
                self.model.stop_training = True

    return StepTimer()


@contextlib.contextmanager
def _compile_options(**options: Any) -> Iterator[None]:
    """Adds keyword arguments to every ``Model.compile`` call inside the block (benchmark-only).

    This is how a candidate change to the loop's ``_compile`` (e.g. ``steps_per_execution=8``) is
    measured without editing the loop.
    """
    if not options:
        yield
        return
    import tf_keras as keras

    original = keras.Model.compile

    def compile_(self, *args, **kwargs):
        return original(self, *args, **{**kwargs, **options})

    keras.Model.compile = compile_
    try:
        yield
    finally:
        keras.Model.compile = original


def _model_fn(name: str, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES, **options) -> Callable:
    return lambda: zoo.create_model(name, input_shape=input_shape, num_classes=num_classes, **options)


def measure_loop(
    model_fn: Callable,
    data_fn: Callable[[int], Any],
    *,
    steps: int,
    warmup: int,
    batch_size: int = BATCH_SIZE,
    runner: str = "loop",
    compile_options: dict[str, Any] | None = None,
    recipe_changes: dict[str, Any] | None = None,
) -> Measurement:
    """Times ``steps`` steps of `training.fit` (the default `training.Recipe`) after ``warmup`` steps.

    Both counts are rounded up to whole executions (``steps_per_execution`` steps each).

    Args:
        model_fn: builds the model (``training.fit`` calls it after seeding).
        data_fn: ``epoch -> tf.data.Dataset`` of ``(images, labels)`` batches of ``batch_size``,
            at least ``warmup + steps`` batches long.
        steps: timed steps.
        warmup: steps run first and not timed (the first one traces the step).
        batch_size: the recipe's batch size (must match ``data_fn``'s batches).
        runner: the name recorded in the result.
        compile_options: extra ``Model.compile`` arguments injected for this measurement
            (``steps_per_execution``, ``jit_compile``): a candidate change to the loop.
        recipe_changes: fields of the default recipe to change (e.g. ``mixed_precision``).

    Returns:
        The `Measurement`.

    Example:
        >>> m = measure_loop(_model_fn("resnet20", (8, 8, 1), 4, stage_depths=(1, 1, 1)),
        ...                  lambda e: synthetic_data(8, 16, (8, 8, 1), 4), steps=2, warmup=2,
        ...                  batch_size=16)  # doctest: +SKIP
    """
    import training

    recipe = training.Recipe(epochs=1, batch_size=batch_size, **(recipe_changes or {}))
    # Keras calls callbacks once per execution: time whole executions.
    spe = int((compile_options or {}).get("steps_per_execution", recipe.steps_per_execution))
    warmup, steps = -(-warmup // spe) * spe, -(-steps // spe) * spe
    timer = _step_timer(warmup=warmup, steps=steps, batch_size=batch_size, runner=runner)
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as out_dir, _compile_options(
        **(compile_options or {})
    ):
        training.fit(model_fn, data_fn, recipe=recipe, out_dir=out_dir, callbacks=[timer], verbose=0)
    if timer.result is None:
        raise ValueError(f"the data ran out before {warmup} + {steps} steps; pass a longer data_fn")
    return timer.result


def measure_plain(
    model_fn: Callable,
    images,
    labels,
    *,
    steps: int,
    warmup: int,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = 0.05,
    runner: str = "fit",
    compile_options: dict[str, Any] | None = None,
) -> Measurement:
    """Times ``steps`` steps of plain ``model.fit``, set up the way a user would, after ``warmup`` steps.

    SGD with momentum 0.9 (Keras' own), sparse categorical cross-entropy on logits, accuracy, and
    ``from_tensor_slices((images, labels)).shuffle(len(images)).batch(batch_size).prefetch(AUTOTUNE)``.

    Args:
        model_fn: builds the model.
        images: float32 array ``[N, H, W, C]``, already normalized; ``N >= (warmup + steps) * batch_size``.
        labels: int array ``[N]``.
        steps: timed steps.
        warmup: steps run first and not timed.
        batch_size: examples per step.
        learning_rate: SGD's learning rate (the recipe's default).
        runner: the name recorded in the result.
        compile_options: extra ``Model.compile`` arguments.

    Returns:
        The `Measurement`.
    """
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = model_fn()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **(compile_options or {}),
    )
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images)).batch(batch_size)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    timer = _step_timer(warmup=warmup, steps=steps, batch_size=batch_size, runner=runner)
    model.fit(ds, epochs=1, callbacks=[timer], verbose=0)
    if timer.result is None:
        raise ValueError(f"the data ran out before {warmup} + {steps} steps; pass more images")
    return timer.result


def measure_ceiling(
    model_fn: Callable,
    *,
    steps: int,
    warmup: int,
    batch_size: int = BATCH_SIZE,
    input_shape=INPUT_SHAPE,
    num_classes: int = NUM_CLASSES,
    runner: str = "ceiling",
) -> Measurement:
    """Times the bare training step: what any loop could reach with this model, optimizer and batch.

    One fixed batch already in memory, the loop's default optimizer (the seed's momentum), and all
    ``steps`` steps inside one ``tf.function`` call (``tf.range``): no input pipeline, no callbacks,
    no Python between steps. A loop at this figure has no overhead left to remove.
    """
    import tensorflow as tf
    import tf_keras as keras

    import training
    from training.optimizers import get_optimizer

    keras.utils.set_random_seed(0)
    model = model_fn()
    recipe = training.Recipe(epochs=1, batch_size=batch_size)
    optimizer = get_optimizer(recipe.optimizer, learning_rate=recipe.learning_rate, **recipe.optimizer_options)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x = tf.random.stateless_normal((batch_size, *input_shape), seed=(0, 1))
    y = tf.random.stateless_uniform((batch_size,), seed=(0, 2), maxval=num_classes, dtype=tf.int32)

    @tf.function
    def train(n):
        loss = tf.constant(0.0)
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    train(tf.constant(warmup)).numpy()  # traces, then runs the warm-up steps
    wall, cpu, busy = time.perf_counter(), time.process_time(), _machine_busy_seconds()
    train(tf.constant(steps)).numpy()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    end_busy = _machine_busy_seconds()
    others = None if busy is None or end_busy is None else max(0.0, (end_busy - busy) - cpu) / wall
    return Measurement(runner=runner, images_per_second=steps * batch_size / wall, cpu_utilisation=cpu / wall,
                       others_cpu=others, steps=steps, seconds=wall, batch_size=batch_size)


# -- data ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Data:
    name: str  # "fashion_mnist" or "synthetic"
    source: str
    options: tuple[tuple[str, Any], ...]  # load_dataset options for this name

    def epoch(self, epoch: int, *, batch_size: int = BATCH_SIZE):
        from training.data import load_dataset

        return load_dataset(self.name, "train", batch_size=batch_size, seed=0, epoch=epoch, drop_remainder=True,
                            **dict(self.options))[0]

    def arrays(self):
        """The same split as normalized numpy arrays, for plain ``fit``."""
        import numpy as np
        from training.data import load_dataset

        ds, info = load_dataset(self.name, "train", batch_size=1 << 30, shuffle=False, normalize=False,
                                **dict(self.options))
        images, labels = next(iter(ds))
        mean, std = np.asarray(info.mean, np.float32), np.asarray(info.std, np.float32)
        return (images.numpy() - mean) / std, labels.numpy()


def _find_data(min_examples: int) -> _Data:
    """Real Fashion-MNIST (`training.load_dataset`'s sources), else the synthetic set."""
    from training.data import load_dataset

    try:
        _, info = load_dataset("fashion_mnist", "train", batch_size=BATCH_SIZE, limit=BATCH_SIZE)
    except (FileNotFoundError, ImportError, ValueError):
        return _Data("synthetic", "synthetic", (("num_examples", max(min_examples, 1024)),))
    return _Data("fashion_mnist", info.source, ())


def synthetic_data(steps: int, batch_size: int, input_shape, num_classes: int):
    """A small synthetic epoch of ``steps`` batches (used by the smoke test)."""
    from training.data import load_dataset

    return load_dataset("synthetic", "train", batch_size=batch_size, drop_remainder=True,
                        num_examples=steps * batch_size, image_shape=tuple(input_shape),
                        num_classes=num_classes)[0]


# -- matmul rate ---------------------------------------------------------------------------------


def matmul_rate(*, n: int = 2048, chain: int = 8, repeats: int = 5) -> dict[str, float]:
    """The fp32 matmul rate: ``chain`` dependent ``n x n`` matmuls per ``tf.function`` call.

    Returns:
        ``{"median_gflops", "best_gflops", "n", "chain", "rounds_gflops", "rounds_others_cpu"}``:
        each repeat is one call, after one untimed call that traces; ``rounds_others_cpu`` is the
        cores other processes kept busy meanwhile.

    Example:
        >>> matmul_rate(n=256, chain=2, repeats=2)["best_gflops"] > 0  # doctest: +SKIP
        True
    """
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4)) / n**0.5  # keeps the chain's values O(1)

    @tf.function
    def run(x, w):
        for _ in range(chain):
            x = tf.linalg.matmul(x, w)
        return tf.reduce_sum(x[:1, :1])

    run(a, b).numpy()
    rates, others = [], []
    for _ in range(repeats):
        start, cpu, busy = time.perf_counter(), time.process_time(), _machine_busy_seconds()
        run(a, b).numpy()
        wall = time.perf_counter() - start
        rates.append(2 * n**3 * chain / wall / 1e9)
        if busy is not None:
            others.append(max(0.0, (_machine_busy_seconds() - busy) - (time.process_time() - cpu)) / wall)
    return {"median_gflops": statistics.median(rates), "best_gflops": max(rates), "n": n, "chain": chain,
            "rounds_gflops": rates, "rounds_others_cpu": others}


def training_flops_per_image(name: str = MODEL, input_shape=INPUT_SHAPE) -> int:
    """Training FLOPs per image: 3 x forward FLOPs (forward, backward to activations and to weights)."""
    return TRAINING_FLOPS_FACTOR * zoo.model_info(name, input_shape=tuple(input_shape)).flops


# -- loop vs fit, and the candidates ---------------------------------------------------------------


def _summary(rounds: Sequence[Measurement]) -> dict[str, Any]:
    rates = [r.images_per_second for r in rounds]
    return {
        "median_images_per_second": statistics.median(rates),
        "min_images_per_second": min(rates),
        "max_images_per_second": max(rates),
        "median_cpu_utilisation": statistics.median(r.cpu_utilisation for r in rounds),
        "one_core_rounds": sum(r.one_core for r in rounds),
        "contended_rounds": sum(r.contended for r in rounds),
        "rounds": [r.to_dict() for r in rounds],
    }


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The median over rounds of a's images/s over b's in the same round (`_summary` dicts).

    The machine's speed drifts by up to about 10% over minutes; a round's two runs are seconds apart,
    so this ratio is less sensitive to the drift than the ratio of the two medians.
    """
    return statistics.median(x["images_per_second"] / y["images_per_second"] for x, y in zip(a["rounds"], b["rounds"]))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Collects garbage, then keeps the collector off for the block (as ``timeit`` does).

    The rounds build a model each and leave the last one's graph for the collector: a full collection
    takes about 0.2 s and otherwise lands in whichever runner's timed steps it happens to fall.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def compare(
    runners: dict[str, Callable[[], Measurement]], *, rounds: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Runs each runner once per round, in order, for ``rounds`` rounds (alternation), and summarizes."""
    results: dict[str, list[Measurement]] = {name: [] for name in runners}
    for i in range(rounds):
        for name, run in runners.items():
            with _gc_paused():
                m = run()
            results[name].append(m)
            others = "" if m.others_cpu is None else f", others {m.others_cpu:.2f} cores"
            flags = ("  ONE-CORE" if m.one_core else "") + ("  (contended)" if m.contended else "")
            log(f"  round {i + 1}/{rounds} {name:<22} {m.images_per_second:7.1f} img/s  "
                f"cpu {m.cpu_utilisation:.2f} cores{others}{flags}")
    return {name: _summary(ms) for name, ms in results.items()}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A change to the loop to measure.

    Attributes:
        name: how the tables call it.
        compile_options: extra ``Model.compile`` arguments (injected by `_compile_options`).
        recipe_changes: recipe fields to change.
        inter_op_threads: TensorFlow's inter-op pool size; thread settings must precede TensorFlow's
            start, so such a candidate runs in child processes, alternating with a baseline child.
        intra_op_threads: likewise, the intra-op pool.
        rounds: rounds for this candidate when it differs from the default (a slow one).
        note: shown in the table.
    """

    name: str
    compile_options: tuple[tuple[str, Any], ...] = ()
    recipe_changes: tuple[tuple[str, Any], ...] = ()
    inter_op_threads: int | None = None
    intra_op_threads: int | None = None
    rounds: int | None = None
    note: str = ""

    @property
    def needs_process(self) -> bool:
        return self.inter_op_threads is not None or self.intra_op_threads is not None


CANDIDATES = (
    Candidate("steps_per_execution=1", recipe_changes=(("steps_per_execution", 1),),
              note="one step per tf.function call, as plain `fit` (the loop before it ran 25)"),
    Candidate("steps_per_execution=100", recipe_changes=(("steps_per_execution", 100),),
              note="100 steps per call; callbacks and the NaN check every 100 steps"),
    Candidate("keras SGD(momentum=0.9)", recipe_changes=(("optimizer", "keras:sgd"),
                                                       ("optimizer_options", {"momentum": 0.9})),
              note="Keras' SGD (six ops per variable) in place of the seed's momentum (one kernel per variable)"),
    Candidate("jit_compile=True", (("jit_compile", True),), rounds=1, note="XLA"),
    Candidate("inter_op_threads=1", inter_op_threads=1,
              note="ops one at a time, each on the 2-thread intra-op pool (default: 2 and 2)"),
    Candidate("mixed_bfloat16", recipe_changes=(("mixed_precision", "mixed_bfloat16"),),
              note="not a drop-in: bfloat16 numerics (the recipe's `mixed_precision` option); for reference"),
)


def _child_measure(candidate: Candidate, *, steps: int, warmup: int, rounds: int,
                   runner: str = "loop") -> list[Measurement]:
    """Runs ``rounds`` rounds in a fresh process: the loop with a candidate's thread settings (they must
    precede TensorFlow's start), or plain ``fit`` (``runner="fit"``)."""
    spec = json.dumps({**dataclasses.asdict(candidate), "steps": steps, "warmup": warmup, "rounds": rounds,
                       "runner": runner})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"child run for {candidate.name} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return [Measurement(**{k: v for k, v in d.items() if k not in ("one_core", "contended")})
            for d in json.loads(line[len("RESULT "):])]


def _run_child(spec: dict[str, Any]) -> None:
    import tensorflow as tf

    if spec.get("inter_op_threads") is not None:
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter_op_threads"])
    if spec.get("intra_op_threads") is not None:
        tf.config.threading.set_intra_op_parallelism_threads(spec["intra_op_threads"])
    data = _find_data((spec["warmup"] + spec["steps"]) * BATCH_SIZE)
    if spec.get("runner") == "fit":
        images, labels = data.arrays()
        run = lambda: measure_plain(_model_fn(MODEL), images, labels, steps=spec["steps"],  # noqa: E731
                                    warmup=spec["warmup"])
    else:
        run = lambda: measure_loop(_model_fn(MODEL), data.epoch, steps=spec["steps"],  # noqa: E731
                                   warmup=spec["warmup"], runner=spec["name"],
                                   compile_options=dict(spec["compile_options"]),
                                   recipe_changes=dict(spec["recipe_changes"]))
    out = []
    for _ in range(spec["rounds"]):
        with _gc_paused():
            out.append(run())
    print("RESULT " + json.dumps([m.to_dict() for m in out]), flush=True)


def measure_candidates(
    candidates: Sequence[Candidate], *, data: "_Data", steps: int, warmup: int, rounds: int,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Measures each candidate alternately with the loop as it is (``rounds`` rounds of each)."""
    model_fn = _model_fn(MODEL)
    out = []
    for cand in candidates:
        c_rounds = cand.rounds or rounds
        if cand.needs_process:
            baseline = Candidate("loop")
            runners = {
                "loop": lambda: _child_measure(baseline, steps=steps, warmup=warmup, rounds=1)[0],
                cand.name: lambda c=cand: _child_measure(c, steps=steps, warmup=warmup, rounds=1)[0],
            }
        else:
            runners = {
                "loop": lambda: measure_loop(model_fn, data.epoch, steps=steps, warmup=warmup),
                cand.name: lambda c=cand: measure_loop(
                    model_fn, data.epoch, steps=steps, warmup=warmup, runner=c.name,
                    compile_options=dict(c.compile_options), recipe_changes=dict(c.recipe_changes)),
            }
        res = compare(runners, rounds=c_rounds, log=log)
        mine, base = res[cand.name], res["loop"]
        out.append({
            "name": cand.name, "note": cand.note, "compile_options": dict(cand.compile_options),
            "recipe_changes": dict(cand.recipe_changes), "inter_op_threads": cand.inter_op_threads,
            "intra_op_threads": cand.intra_op_threads, "rounds": c_rounds, "steps": steps, "warmup": warmup,
            "median_images_per_second": mine["median_images_per_second"],
            "baseline_median_images_per_second": base["median_images_per_second"],
            "ratio": mine["median_images_per_second"] / base["median_images_per_second"],
            "paired_ratio": paired_ratio(mine, base),
            "median_cpu_utilisation": mine["median_cpu_utilisation"],
            "one_core_rounds": mine["one_core_rounds"], "contended_rounds": mine["contended_rounds"],
            "candidate_rounds": mine["rounds"], "baseline_rounds": base["rounds"],
        })
    return out


def measure_processes(
    pairs: int, *, steps: int, warmup: int, rounds: int, log: Callable[[str], None] = print,
    measure: Callable[..., list[Measurement]] = _child_measure,
) -> dict[str, Any]:
    """The loop against plain ``fit`` over fresh processes: ``pairs`` x (a loop process, a fit process).

    The in-process comparison shares one TensorFlow runtime (thread pools, allocator, oneDNN's caches)
    between both runners; a state a process falls into at start-up (the issue's "one busy core" mode,
    seen in about a third of runs) shows only across processes. Each process runs ``rounds`` rounds.

    Returns:
        Per runner, `_summary` of all its rounds plus ``process_medians`` (each process's median
        images/s) and ``one_core_processes``; and ``ratio`` (median of the loop's process medians over
        fit's) and ``paired_ratio`` (median over pairs of loop process over the fit process after it).
    """
    loop_cand = Candidate("loop")
    per: dict[str, list[list[Measurement]]] = {"loop": [], "fit": []}
    for i in range(pairs):
        for runner in ("loop", "fit"):
            ms = measure(loop_cand, steps=steps, warmup=warmup, rounds=rounds, runner=runner)
            per[runner].append(ms)
            rates = ", ".join(f"{m.images_per_second:.1f}" for m in ms)
            cpus = ", ".join(f"{m.cpu_utilisation:.2f}" for m in ms)
            flags = "  ONE-CORE" if any(m.one_core for m in ms) else ""
            log(f"  process pair {i + 1}/{pairs} {runner:<4} {rates} img/s  cpu {cpus} cores{flags}")
    out: dict[str, Any] = {"pairs": pairs, "rounds_per_process": rounds, "steps": steps, "warmup": warmup}
    for runner, processes in per.items():
        summary = _summary([m for ms in processes for m in ms])
        summary["process_medians"] = [statistics.median(m.images_per_second for m in ms) for ms in processes]
        summary["one_core_processes"] = sum(any(m.one_core for m in ms) for ms in processes)
        out[runner] = summary
    loop, fit = out["loop"]["process_medians"], out["fit"]["process_medians"]
    out["ratio"] = statistics.median(loop) / statistics.median(fit)
    out["paired_ratio"] = statistics.median(a / b for a, b in zip(loop, fit))
    return out


# -- families ------------------------------------------------------------------------------------


def smallest_per_family(input_shape=INPUT_SHAPE) -> list[Any]:
    """One small variant per family: the fewest parameters (at its default shape) that builds at ``input_shape``."""
    families: dict[str, list[tuple[int, str]]] = {}
    for name in zoo.list_models():
        info = zoo.model_info(name)
        families.setdefault(info.family, []).append((info.params, name))
    chosen = []
    for family, variants in families.items():
        for _, name in sorted(variants):
            try:
                chosen.append(zoo.model_info(name, input_shape=tuple(input_shape)))
                break
            except ValueError:
                continue
    return chosen


def family_sweep(
    *, matmul_gflops: float, data: _Data, budget_seconds: float, max_steps: int, min_steps: int = 2,
    warmup: int = 2,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Images/s of the shared loop for `smallest_per_family`, each timed for about ``budget_seconds``.

    A model timed for fewer steps than the recipe's ``steps_per_execution`` runs that many steps per
    execution, so that slow models are not timed for a whole default execution.
    """
    import training

    rows = []
    for info in smallest_per_family():
        # Steps from a rough guess (60% of the matmul rate), so that big models stay within budget.
        guess = 0.6 * matmul_gflops * 1e9 / (TRAINING_FLOPS_FACTOR * info.flops)
        steps = max(min_steps, min(max_steps, int(budget_seconds * guess / BATCH_SIZE)))
        spe = min(training.Recipe().steps_per_execution, steps)
        row = {"model": info.name, "family": info.family, "params": info.params, "macs": info.macs,
               "flops": info.flops, "steps": steps, "steps_per_execution": spe}
        started = time.perf_counter()
        try:
            m = measure_loop(_model_fn(info.name), data.epoch, steps=steps, warmup=warmup, runner=info.name,
                             recipe_changes={"steps_per_execution": spe})
            row["steps"] = m.steps
        except Exception as e:  # noqa: BLE001  (one family failing must not lose the others' rows)
            row.update(error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            log(f"  {info.name:<28} FAILED {row['error']}")
        else:
            train_gflops = m.images_per_second * TRAINING_FLOPS_FACTOR * info.flops / 1e9
            row.update(images_per_second=m.images_per_second, cpu_utilisation=m.cpu_utilisation,
                       others_cpu=m.others_cpu, training_gflops=train_gflops,
                       matmul_share=train_gflops / matmul_gflops)
            others = "" if m.others_cpu is None else f", others {m.others_cpu:.2f}"
            log(f"  {info.name:<28} {m.images_per_second:8.1f} img/s  cpu {m.cpu_utilisation:.2f}{others}  "
                f"{train_gflops:6.1f} GFLOP/s ({100 * train_gflops / matmul_gflops:.0f}% of matmul)  "
                f"[{m.steps} steps, {time.perf_counter() - started:.0f} s]")
        rows.append(row)
    return rows


# -- report --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("unknown", "x86_64", ""):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    import tensorflow as tf

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "avx512": "avx512f" in flags,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _fmt_int(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def targets(results: dict[str, Any]) -> dict[str, bool]:
    """The issue's three targets, met or not, from a results dict (one-core: in-process and fresh processes)."""
    loop = results["loop_vs_fit"]["loop"]
    in_processes = results.get("processes", {}).get("loop", {}).get("one_core_rounds", 0)
    return {
        "loop_never_one_core": loop["one_core_rounds"] == 0 and in_processes == 0,
        f"ratio_at_least_{TARGET_RATIO}": results["loop_vs_fit"]["ratio"] >= TARGET_RATIO,
        f"matmul_share_at_least_{TARGET_MATMUL_SHARE}": results["matmul_share"] >= TARGET_MATMUL_SHARE,
    }


def _cell_cpu(r: dict[str, Any]) -> str:
    flags = [f for f, on in (("one core", r["one_core"]), ("contended", r["contended"])) if on]
    return f"{r['cpu_utilisation']:.2f}" + (f" ({', '.join(flags)})" if flags else "")


def _others(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _processes_section(pr: dict[str, Any] | None) -> list[str]:
    """The markdown lines for `measure_processes`' results (none when it did not run)."""
    if not pr:
        return []
    lines = [
        "### Across fresh processes",
        "",
        f"The same comparison in {2 * pr['pairs']} fresh processes, alternately a loop process and a fit process, "
        f"{pr['rounds_per_process']} rounds of {pr['steps']} timed steps each: a state a process falls into at "
        "start-up (thread pools, allocator) shows only here.",
        "",
        "| pair | loop img/s (per round) | loop CPU | fit img/s (per round) | fit CPU |",
        "| ---: | ---------------------- | -------- | --------------------- | ------- |",
    ]
    k = pr["rounds_per_process"]
    for i in range(pr["pairs"]):
        cells = []
        for runner in ("loop", "fit"):
            rs = pr[runner]["rounds"][i * k:(i + 1) * k]
            cells.append(", ".join(f"{r['images_per_second']:.1f}" for r in rs))
            cells.append(", ".join(_cell_cpu(r) for r in rs))
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Median of the process medians: loop **{statistics.median(pr['loop']['process_medians']):.1f}**, fit "
        f"**{statistics.median(pr['fit']['process_medians']):.1f}** img/s; ratio **{pr['ratio']:.3f}** (per pair: "
        f"{pr['paired_ratio']:.3f}). One-core processes: loop {pr['loop']['one_core_processes']}/{pr['pairs']}, "
        f"fit {pr['fit']['one_core_processes']}/{pr['pairs']}.",
        "",
    ]
    return lines


def write_markdown(results: dict[str, Any], path: str) -> None:
    """Writes the results as the markdown page ``docs/train_throughput.md``."""
    machine, cmp_, mm = results["machine"], results["loop_vs_fit"], results["matmul"]
    loop, fit = cmp_["loop"], cmp_["fit"]
    n = results["rounds"]
    met = ["✓" if v else "✗" for v in results["targets"].values()]
    load = ", ".join(f"{x:.1f}" for x in machine["load_average"] or ())
    lines = [
        "# Training throughput",
        "",
        "<!-- Generated by `.venv/bin/python benchmarks/train_throughput.py`; do not edit by hand. -->",
        "",
        f"Measured {machine['date']} ({results['mode']} run, {results['elapsed_seconds'] / 60:.1f} min) on "
        f"{machine['nproc']} CPU cores, {machine['cpu_model']}{' (AVX-512)' if machine['avx512'] else ''}, "
        f"TensorFlow {machine['tensorflow']}, Python {machine['python']}; load average at the start {load}. "
        f"Data: {results['data']}.",
        "",
        "How to read it: images/s are steady-state, timed after warm-up steps that include tracing. *CPU* is "
        "this process's CPU seconds per wall second over the timed steps (2.0 = both cores busy). A round is "
        f"*one core* when CPU is below {ONE_CORE_THRESHOLD} while at least half a core sat idle (the degenerate "
        f"mode), *contended* when other processes kept more than {CONTENDED_THRESHOLD} cores busy (its figure "
        "is noisy: the cores were shared). *Others* is the cores other processes used meanwhile, from "
        "`/proc/stat`.",
        "",
        "## Targets (issue 3, item 9)",
        "",
        "| target | measured | met |",
        "| ------ | -------- | :-: |",
        f"| the shared loop is never in the one-core mode | {loop['one_core_rounds']}/{n} rounds one-core"
        + ("" if "processes" not in results else
           f"; {results['processes']['loop']['one_core_rounds']}/{len(results['processes']['loop']['rounds'])} "
           f"rounds in {results['processes']['pairs']} fresh loop processes")
        + f" | {met[0]} |",
        f"| loop median ≥ {TARGET_RATIO} x plain `fit` median | {cmp_['ratio']:.3f} | "
        f"{met[1]} |",
        f"| ResNet-20 training ≥ {100 * TARGET_MATMUL_SHARE:.0f}% of the fp32 matmul rate | "
        f"{100 * results['matmul_share']:.0f}% | {met[2]} |",
        "",
        "## The shared loop against plain `model.fit`",
        "",
        f"`{MODEL}` at {'x'.join(map(str, INPUT_SHAPE))}, {NUM_CLASSES} classes, batch {BATCH_SIZE}, SGD+momentum "
        "(the loop: the default `training.Recipe`, the seed's momentum as one `ResourceApplyMomentum` kernel per "
        "variable (Keras' SGD: six ops per variable, not counting reads), "
        f"{results.get('loop_steps_per_execution', 1)} steps per `tf.function` call (`recipe.steps_per_execution`); "
        "plain: `keras.optimizers.SGD(momentum=0.9)`, `from_tensor_slices(...).shuffle(...).batch(128)"
        ".prefetch(AUTOTUNE)` and Keras' default of one step per call), a fresh model per round. "
        f"{n} rounds, alternately, {results['steps']} timed steps each after {results['warmup']} warm-up steps; "
        "garbage collected before each round and the collector off during it.",
        "",
        "| round | loop img/s | loop CPU | fit img/s | fit CPU | bare step img/s | bare step CPU | others (loop / fit) |",
        "| ----: | ---------: | -------- | --------: | ------- | --------------: | ------------- | ------------------- |",
    ]
    bare = cmp_.get("ceiling", {}).get("rounds") or [None] * len(loop["rounds"])
    for i, (a, b, c) in enumerate(zip(loop["rounds"], fit["rounds"], bare), 1):
        bare_cells = "– | –" if c is None else f"{c['images_per_second']:.1f} | {_cell_cpu(c)}"
        lines.append(f"| {i} | {a['images_per_second']:.1f} | {_cell_cpu(a)} | {b['images_per_second']:.1f} | "
                     f"{_cell_cpu(b)} | {bare_cells} | {_others(a['others_cpu'])} / {_others(b['others_cpu'])} |")
    lines += [
        "",
        f"Median: loop **{loop['median_images_per_second']:.1f}** img/s (CPU {loop['median_cpu_utilisation']:.2f}), "
        f"fit **{fit['median_images_per_second']:.1f}** img/s (CPU {fit['median_cpu_utilisation']:.2f}); "
        f"ratio loop/fit **{cmp_['ratio']:.3f}**"
        + ("" if "paired_ratio" not in cmp_ else
           f" (the median of the {n} per-round ratios, each loop round against the fit round seconds after it, "
           f"which the machine's drift over minutes moves less: **{cmp_['paired_ratio']:.3f}**)")
        + f". One-core rounds: loop {loop['one_core_rounds']}/{n}, fit "
        f"{fit['one_core_rounds']}/{n}. Contended rounds: loop {loop['contended_rounds']}/{n}, fit "
        f"{fit['contended_rounds']}/{n}.",
        "",
        *([] if "ceiling" not in cmp_ else [
            f"*Bare step* (`measure_ceiling`): the same model and optimizer on one fixed in-memory batch, all steps "
            "in one `tf.function` call (no input pipeline, no callbacks, no Python between steps), what any loop "
            f"might be expected to reach: median **{cmp_['ceiling']['median_images_per_second']:.1f}** img/s. The "
            f"loop runs at **{cmp_['ceiling_ratio']:.3f}** of it and plain `fit` at "
            f"{fit['median_images_per_second'] / cmp_['ceiling']['median_images_per_second']:.3f}. Rounds of the "
            "same runner differ by up to about 10% on this shared machine; only the alternation in one run makes "
            "the medians comparable.", ""]),
        *_processes_section(results.get("processes")),
        "## ResNet-20 against the fp32 matmul rate",
        "",
        f"A chain of {mm['chain']} dependent {mm['n']}x{mm['n']} float32 matmuls per `tf.function` call, timed "
        f"{len(mm['rounds_gflops']) // 2} times before the comparison and as many after: median "
        f"**{mm['median_gflops']:.1f}** "
        f"GFLOP/s (best {mm['best_gflops']:.1f}; others kept a median of "
        f"{statistics.median(mm['rounds_others_cpu'] or [0.0]):.2f} cores busy).",
        "",
        f"ResNet-20 at 28x28x1 costs {results['forward_flops'] / 1e6:.1f} MFLOP forward per image "
        f"(`zoo.model_info(...).flops`, 2 x MACs). Training is counted as {TRAINING_FLOPS_FACTOR} x forward "
        "(forward, backward to the activations, backward to the weights; batch norm, activations, the "
        f"optimizer not counted) = {results['training_flops_per_image'] / 1e6:.1f} MFLOP per image. At the "
        f"loop's median {loop['median_images_per_second']:.1f} img/s that is **{results['training_gflops']:.1f}** "
        f"GFLOP/s = **{100 * results['matmul_share']:.0f}%** of the matmul rate (plain fit: "
        f"{100 * results['fit_matmul_share']:.0f}%).",
        "",
    ]
    if results.get("candidates"):
        lines += [
            "## Candidate changes to the loop",
            "",
            "Each measured alternately with the loop as it is, in rounds of the same length (rounded up to whole "
            "executions). Recipe changes are the recipe's own fields; compile options are injected by the "
            "benchmark into the loop's `Model.compile` (the loop itself is unchanged); thread settings run in "
            "child processes, alternating with a baseline child.",
            "",
            "| candidate | median img/s | loop median img/s | ratio | per-round ratio | CPU "
            "| rounds (one-core, contended) | note |",
            "| --------- | -----------: | ----------------: | ----: | --------------: | --: "
            "| ---------------------------- | ---- |",
        ]
        for c in results["candidates"]:
            lines.append(f"| `{c['name']}` | {c['median_images_per_second']:.1f} | "
                         f"{c['baseline_median_images_per_second']:.1f} | {c['ratio']:.3f} | "
                         f"{'–' if 'paired_ratio' not in c else format(c['paired_ratio'], '.3f')} | "
                         f"{c['median_cpu_utilisation']:.2f} | {c['rounds']} ({c['one_core_rounds']}, "
                         f"{c['contended_rounds']}) | {c['note']} |")
        lines.append("")
    if results.get("families"):
        lines += [
            "## Every family's small configuration at 28x28x1",
            "",
            "Per family, the variant with the fewest parameters (at its default shape) that builds at 28x28x1, "
            f"trained by the shared loop with the default recipe at batch {BATCH_SIZE}; one round of a few timed "
            "steps (more for fast models) after at least 2 warm-up steps, in executions of at most the recipe's "
            "steps per execution (fewer when fewer steps are timed). Single rounds vary by up to about 10% even on a "
            "quiet machine (see the rounds above), so read this table to within that. Parameters and MACs are "
            f"at 28x28x1 with 10 classes; % of matmul counts training as {TRAINING_FLOPS_FACTOR} x forward FLOPs.",
            "",
            "| model | family | params | MACs | images/s | CPU | others | % of matmul | timed steps |",
            "| ----- | ------ | -----: | ---: | -------: | --- | -----: | ----------: | ----------: |",
        ]
        for row in results["families"]:
            head = f"| `{row['model']}` | {row['family']} | {row['params']:,} | {_fmt_int(row['macs'])} |"
            if "error" in row:
                lines.append(f"{head} failed: {row['error']} | | | | {row['steps']} |")
            else:
                cpu = _cell_cpu({**row, "one_core": False, "contended": (row["others_cpu"] or 0) > CONTENDED_THRESHOLD})
                lines.append(f"{head} {row['images_per_second']:.1f} | {cpu} | {_others(row['others_cpu'])} | "
                             f"{100 * row['matmul_share']:.0f}% | {row['steps']} |")
        lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))


# -- main ----------------------------------------------------------------------------------------


def run_benchmark(*, quick: bool, candidates: bool = True, families: bool = True, processes: int | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs everything and returns the results dict that `write_markdown` and the JSON file take.

    ``processes``: pairs of fresh processes for `measure_processes` (default: 4, or 0 with ``quick``).
    """
    import training

    started = time.perf_counter()
    # Whole executions of the loop's default steps_per_execution (25), so every runner times the same steps.
    rounds, steps, warmup = (2, 25, 25) if quick else (6, 50, 25)
    data = _find_data(250 * BATCH_SIZE)  # the synthetic fallback must outlast the longest round (200 steps)
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": machine_info(),
                               "data": f"{data.name} ({data.source})", "rounds": rounds, "steps": steps,
                               "warmup": warmup, "batch_size": BATCH_SIZE, "model": MODEL,
                               "input_shape": list(INPUT_SHAPE), "training_flops_factor": TRAINING_FLOPS_FACTOR,
                               "loop_steps_per_execution": training.Recipe().steps_per_execution}
    m = results["machine"]
    log(f"{m['date']}  {m['nproc']} cores  {m['cpu_model']}  TF {m['tensorflow']}  load {m['load_average']}")
    log(f"data: {results['data']}")

    log("matmul rate (2048x2048 float32):")
    mm = matmul_rate(repeats=3 if quick else 5)
    log(f"  median {mm['median_gflops']:.1f} GFLOP/s, best {mm['best_gflops']:.1f}; others kept "
        f"{', '.join(f'{o:.2f}' for o in mm['rounds_others_cpu'])} cores busy")

    images, labels = data.arrays()
    model_fn = _model_fn(MODEL)
    log(f"loop vs fit: {MODEL} {INPUT_SHAPE}, batch {BATCH_SIZE}, {rounds} rounds x {steps} steps "
        f"(+{warmup} warm-up)")
    cmp_ = compare({
        "loop": lambda: measure_loop(model_fn, data.epoch, steps=steps, warmup=warmup),
        "fit": lambda: measure_plain(model_fn, images, labels, steps=steps, warmup=warmup),
        "ceiling": lambda: measure_ceiling(model_fn, steps=steps, warmup=warmup),
    }, rounds=rounds, log=log)
    del images, labels
    cmp_["ratio"] = cmp_["loop"]["median_images_per_second"] / cmp_["fit"]["median_images_per_second"]
    cmp_["paired_ratio"] = paired_ratio(cmp_["loop"], cmp_["fit"])
    cmp_["ceiling_ratio"] = cmp_["loop"]["median_images_per_second"] / cmp_["ceiling"]["median_images_per_second"]
    results["loop_vs_fit"] = cmp_

    after = matmul_rate(repeats=3 if quick else 5)
    log(f"matmul rate again: median {after['median_gflops']:.1f} GFLOP/s")
    mm["rounds_gflops"] += after["rounds_gflops"]
    mm["rounds_others_cpu"] += after["rounds_others_cpu"]
    mm["median_gflops"] = statistics.median(mm["rounds_gflops"])
    mm["best_gflops"] = max(mm["rounds_gflops"])
    results["matmul"] = mm
    forward = zoo.model_info(MODEL, input_shape=INPUT_SHAPE).flops
    results["forward_flops"] = forward
    results["training_flops_per_image"] = TRAINING_FLOPS_FACTOR * forward
    results["training_gflops"] = cmp_["loop"]["median_images_per_second"] * TRAINING_FLOPS_FACTOR * forward / 1e9
    results["matmul_share"] = results["training_gflops"] / mm["median_gflops"]
    results["fit_matmul_share"] = (cmp_["fit"]["median_images_per_second"] * TRAINING_FLOPS_FACTOR * forward
                                   / 1e9 / mm["median_gflops"])
    pairs = (0 if quick else 4) if processes is None else processes
    if pairs:
        log(f"loop vs fit across fresh processes: {pairs} pairs x 2 rounds each")
        results["processes"] = measure_processes(pairs, steps=steps, warmup=warmup, rounds=2, log=log)
    results["targets"] = targets(results)

    results["candidates"] = []
    if candidates:
        c_rounds, c_steps = (1, 25) if quick else (3, 50)
        chosen = CANDIDATES[:1] if quick else CANDIDATES
        log(f"candidates: {c_rounds} rounds x {c_steps} steps each (whole executions), alternating with the loop "
            "as it is")
        results["candidates"] = measure_candidates(chosen, data=data, steps=c_steps, warmup=warmup, rounds=c_rounds,
                                                   log=log)

    results["families"] = []
    if families:
        log("families (shared loop, 28x28x1):")
        results["families"] = family_sweep(
            matmul_gflops=mm["median_gflops"], data=data, budget_seconds=1 if quick else 8,
            min_steps=1 if quick else 2, max_steps=1 if quick else 30, warmup=1 if quick else 2, log=log)
    results["elapsed_seconds"] = time.perf_counter() - started
    return results


def print_summary(results: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """The figures the issue asks for, as plain lines."""
    cmp_, mm = results["loop_vs_fit"], results["matmul"]
    loop, fit = cmp_["loop"], cmp_["fit"]
    n = results["rounds"]
    log("")
    log(f"== {results['model']} {tuple(results['input_shape'])}, batch {results['batch_size']}, {n} rounds x "
        f"{results['steps']} steps (+{results['warmup']} warm-up), alternately ==")
    for name, summary in (("loop", loop), ("fit", fit)):
        rates = ", ".join(f"{r['images_per_second']:.0f}" for r in summary["rounds"])
        cpus = ", ".join(f"{r['cpu_utilisation']:.2f}" for r in summary["rounds"])
        log(f"{name:<5} per round: {rates} img/s; cpu {cpus} cores")
    log(f"median: loop {loop['median_images_per_second']:.1f} img/s, fit {fit['median_images_per_second']:.1f} "
        f"img/s, ratio loop/fit {cmp_['ratio']:.3f} (target >= {TARGET_RATIO}); median of the per-round ratios "
        f"{cmp_['paired_ratio']:.3f}")
    if "ceiling" in cmp_:
        log(f"the bare step (one in-memory batch, all steps in one tf.function call): "
            f"{cmp_['ceiling']['median_images_per_second']:.1f} img/s; loop/bare step {cmp_['ceiling_ratio']:.3f}, "
            f"fit/bare step {fit['median_images_per_second'] / cmp_['ceiling']['median_images_per_second']:.3f}")
    log(f"one-core rounds: loop {loop['one_core_rounds']}/{n}, fit {fit['one_core_rounds']}/{n}; contended "
        f"rounds (others > {CONTENDED_THRESHOLD} cores): loop {loop['contended_rounds']}/{n}, "
        f"fit {fit['contended_rounds']}/{n}")
    log(f"matmul {mm['median_gflops']:.1f} GFLOP/s (best {mm['best_gflops']:.1f}); ResNet-20 training "
        f"{results['training_gflops']:.1f} GFLOP/s ({TRAINING_FLOPS_FACTOR} x forward FLOPs) = "
        f"{100 * results['matmul_share']:.0f}% of it (fit: {100 * results['fit_matmul_share']:.0f}%; target >= "
        f"{100 * TARGET_MATMUL_SHARE:.0f}%)")
    if "processes" in results:
        pr = results["processes"]
        log(f"fresh processes ({pr['pairs']} pairs x {pr['rounds_per_process']} rounds): loop "
            f"{', '.join(f'{v:.0f}' for v in pr['loop']['process_medians'])}, fit "
            f"{', '.join(f'{v:.0f}' for v in pr['fit']['process_medians'])} img/s; ratio of medians "
            f"{pr['ratio']:.3f}, per pair {pr['paired_ratio']:.3f}; one-core processes loop "
            f"{pr['loop']['one_core_processes']}/{pr['pairs']}, fit {pr['fit']['one_core_processes']}/{pr['pairs']}")
    for c in results["candidates"]:
        log(f"candidate {c['name']:<24} {c['median_images_per_second']:7.1f} vs loop "
            f"{c['baseline_median_images_per_second']:7.1f} img/s: x{c['ratio']:.3f} "
            f"(per round x{c['paired_ratio']:.3f})")
    log("targets: " + ", ".join(f"{k} {'MET' if v else 'NOT MET'}" for k, v in results["targets"].items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps (under 3 minutes)")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})")
    parser.add_argument("--docs", default=DEFAULT_DOCS, help=f"markdown output (default {DEFAULT_DOCS})")
    parser.add_argument("--no-candidates", action="store_true", help="skip the candidate changes")
    parser.add_argument("--no-families", action="store_true", help="skip the per-family table")
    parser.add_argument("--processes", type=int, default=None,
                        help="pairs of fresh processes (loop, fit) to compare across (default 4; 0 with --quick)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one candidate in a fresh process
    args = parser.parse_args(argv)
    if args.child:
        _run_child(json.loads(args.child))
        return 0

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    results = run_benchmark(quick=args.quick, candidates=not args.no_candidates, families=not args.no_families,
                            processes=args.processes, log=log)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    write_markdown(results, args.docs)
    print_summary(results, log)
    log(f"wrote {args.json} and {args.docs} in {results['elapsed_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
