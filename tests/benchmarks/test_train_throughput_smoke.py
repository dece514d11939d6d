"""Smoke test of benchmarks/train_throughput.py: the measurements run and report their fields.

No timing assertions: speed targets live in the benchmark, not in tests.
"""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "train_throughput", os.path.join(ROOT, "benchmarks", "train_throughput.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SHAPE, CLASSES, BATCH = (8, 8, 1), 4, 16


def _tiny(bench):
    return bench._model_fn("resnet20", SHAPE, CLASSES, stage_depths=(1, 1, 1))


def _check(m, runner, steps):
    assert m.runner == runner and m.steps == steps and m.batch_size == BATCH
    assert m.images_per_second > 0 and m.seconds > 0 and m.cpu_utilisation >= 0
    d = m.to_dict()
    assert set(d) >= {"runner", "images_per_second", "cpu_utilisation", "others_cpu", "steps", "seconds",
                      "one_core", "contended"}
    json.dumps(d)


def test_measure_loop_and_plain_fit_report_a_measurement(bench):
    data = lambda epoch: bench.synthetic_data(5, BATCH, SHAPE, CLASSES)  # noqa: E731
    _check(bench.measure_loop(_tiny(bench), data, steps=2, warmup=2, batch_size=BATCH,
                              recipe_changes={"steps_per_execution": 1}), "loop", 2)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5 * BATCH, *SHAPE)).astype("float32")
    labels = rng.integers(0, CLASSES, 5 * BATCH).astype("int32")
    _check(bench.measure_plain(_tiny(bench), images, labels, steps=2, warmup=2, batch_size=BATCH), "fit", 2)
    _check(bench.measure_ceiling(_tiny(bench), steps=3, warmup=1, batch_size=BATCH, input_shape=SHAPE,
                                 num_classes=CLASSES), "ceiling", 3)


def test_candidates_run_whole_executions_and_short_data_is_an_error(bench):
    data = lambda epoch: bench.synthetic_data(6, BATCH, SHAPE, CLASSES)  # noqa: E731
    m = bench.measure_loop(_tiny(bench), data, steps=3, warmup=1, batch_size=BATCH, runner="spe2",
                           recipe_changes={"steps_per_execution": 2})
    _check(m, "spe2", 4)  # 1 + 3 steps rounded up to whole executions of 2: 2 + 4
    m = bench.measure_loop(_tiny(bench), data, steps=2, warmup=1, batch_size=BATCH, runner="spe1",
                           recipe_changes={"steps_per_execution": 2}, compile_options={"steps_per_execution": 1})
    _check(m, "spe1", 2)  # a compile option overrides the recipe
    with pytest.raises(ValueError, match="ran out"):
        bench.measure_loop(_tiny(bench), lambda e: bench.synthetic_data(2, BATCH, SHAPE, CLASSES), steps=4,
                           warmup=1, batch_size=BATCH)


def test_compare_alternates_and_summarizes(bench):
    order = []

    def runner(name, rate):
        def run():
            order.append(name)
            return bench.Measurement(runner=name, images_per_second=rate, cpu_utilisation=1.9, others_cpu=0.0,
                                     steps=4, seconds=1.0, batch_size=BATCH)
        return run

    out = bench.compare({"loop": runner("loop", 110.0), "fit": runner("fit", 100.0)}, rounds=2, log=lambda m: None)
    assert order == ["loop", "fit", "loop", "fit"]
    assert out["loop"]["median_images_per_second"] == 110.0 and out["fit"]["one_core_rounds"] == 0
    assert len(out["fit"]["rounds"]) == 2
    assert bench.paired_ratio(out["loop"], out["fit"]) == pytest.approx(1.1)
    drift = {"rounds": [{"images_per_second": v} for v in (100.0, 200.0, 300.0)]}
    after = {"rounds": [{"images_per_second": v} for v in (95.0, 190.0, 240.0)]}
    # Each round against its partner: 100/95, 200/190, 300/240 -> median 200/190.
    assert bench.paired_ratio(drift, after) == pytest.approx(200 / 190)


def test_measure_processes_alternates_fresh_processes_and_flags_one_core(bench):
    calls = []
    rates = iter([900.0, 910.0, 800.0, 780.0, 880.0, 870.0, 420.0, 400.0])  # pair 2's fit: one busy core

    def fake(candidate, *, steps, warmup, rounds, runner):
        calls.append((candidate.name, runner, steps, warmup, rounds))
        out = []
        for _ in range(rounds):
            rate = next(rates)
            out.append(bench.Measurement(runner=runner, images_per_second=rate,
                                         cpu_utilisation=1.0 if rate < 500 else 1.9, others_cpu=0.0, steps=steps,
                                         seconds=1.0, batch_size=BATCH))
        return out

    pr = bench.measure_processes(2, steps=50, warmup=25, rounds=2, log=lambda m: None, measure=fake)
    assert calls == [("loop", "loop", 50, 25, 2), ("loop", "fit", 50, 25, 2)] * 2
    assert pr["loop"]["process_medians"] == [905.0, 875.0] and pr["fit"]["process_medians"] == [790.0, 410.0]
    assert pr["ratio"] == pytest.approx(890.0 / 600.0)
    assert pr["paired_ratio"] == pytest.approx((905 / 790 + 875 / 410) / 2)
    assert (pr["loop"]["one_core_processes"], pr["fit"]["one_core_processes"]) == (0, 1)
    assert pr["fit"]["one_core_rounds"] == 2 and len(pr["fit"]["rounds"]) == 4
    json.dumps(pr)


def test_results_render_as_the_docs_page(bench, tmp_path):
    def run(name, rate):
        return lambda: bench.Measurement(runner=name, images_per_second=rate, cpu_utilisation=1.9, others_cpu=0.01,
                                         steps=4, seconds=1.0, batch_size=BATCH)

    cmp_ = bench.compare({"loop": run("loop", 900.0), "fit": run("fit", 800.0), "ceiling": run("ceiling", 1000.0)},
                         rounds=2, log=lambda m: None)
    cmp_["ratio"], cmp_["ceiling_ratio"], cmp_["paired_ratio"] = 900.0 / 800.0, 0.9, 1.125
    results = {
        "mode": "quick", "elapsed_seconds": 60.0, "data": "synthetic (synthetic)", "rounds": 2, "steps": 4,
        "warmup": 2, "model": "resnet20", "input_shape": [28, 28, 1], "batch_size": BATCH,
        "machine": {"date": "2026-01-01T00:00:00+00:00", "nproc": 2, "cpu_model": "test CPU", "avx512": False,
                    "tensorflow": "2.x", "python": "3.11", "load_average": (0.1, 0.2, 0.3)},
        "loop_vs_fit": cmp_,
        "matmul": {"n": 2048, "chain": 8, "median_gflops": 200.0, "best_gflops": 210.0,
                   "rounds_gflops": [200.0, 210.0], "rounds_others_cpu": [0.0, 0.0]},
        "forward_flops": 61_642_496, "training_flops_per_image": 184_927_488, "training_gflops": 166.4,
        "matmul_share": 0.832, "fit_matmul_share": 0.74,
        "candidates": [{"name": "steps_per_execution=8", "note": "n", "median_images_per_second": 950.0,
                        "baseline_median_images_per_second": 900.0, "ratio": 950 / 900, "paired_ratio": 1.04,
                        "median_cpu_utilisation": 1.9,
                        "rounds": 3, "one_core_rounds": 0, "contended_rounds": 0}],
        "families": [
            {"model": "resnet20", "family": "resnet", "params": 270810, "macs": 30821248, "steps": 30,
             "images_per_second": 900.0, "cpu_utilisation": 1.9, "others_cpu": 0.0, "matmul_share": 0.83},
            {"model": "googlenet", "family": "googlenet", "params": 1, "macs": 1, "steps": 2, "error": "E: x"},
        ],
    }
    proc = lambda rate, cpu: [bench.Measurement(runner="x", images_per_second=rate, cpu_utilisation=cpu,  # noqa: E731
                                                others_cpu=0.0, steps=4, seconds=1.0, batch_size=BATCH)]
    rates = iter([proc(880.0, 1.9), proc(820.0, 1.9)])
    results["processes"] = bench.measure_processes(1, steps=4, warmup=2, rounds=1, log=lambda m: None,
                                                   measure=lambda *a, **k: next(rates))
    results["targets"] = bench.targets(results)
    assert list(results["targets"].values()) == [True, True, True]
    path = tmp_path / "train_throughput.md"
    bench.write_markdown(results, str(path))
    text = path.read_text()
    for expected in ("## Targets", "| 1.125 | ✓ |", "| 1 | 900.0 | 1.90 | 800.0 | 1.90 | 1000.0 | 1.90 |",
                     "The loop runs at **0.900** of it and plain `fit` at 0.800", "steps_per_execution=8",
                     "which the machine's drift over minutes moves less: **1.125**", "| 1.056 | 1.040 |",
                     "failed: E: x", "test CPU",
                     "| `resnet20` | resnet | 270,810 | 30.8M |", "0/2 rounds one-core; 0/1 rounds in 1 fresh loop processes",
                     "### Across fresh processes", "| 1 | 880.0 | 1.90 | 820.0 | 1.90 |",
                     "ratio **1.073** (per pair: 1.073)"):
        assert expected in text, expected
    json.dumps(results)
    # A loop process in the one-core mode fails the first target even when the in-process rounds pass.
    rates = iter([proc(400.0, 1.0), proc(820.0, 1.9)])
    results["processes"] = bench.measure_processes(1, steps=4, warmup=2, rounds=1, log=lambda m: None,
                                                   measure=lambda *a, **k: next(rates))
    assert list(bench.targets(results).values())[0] is False
