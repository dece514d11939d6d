"""benchmarks/compression.py: its summary and markdown from a results dict, and one tiny real variant.

No size or speed assertions on real models: those figures come from running the benchmark.
"""

import dataclasses
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("compression", os.path.join(ROOT, "benchmarks", "compression.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _variant(name, compression, change):
    parity = {"examples": 100, "top1_agreement": 0.99, "float_accuracy": 0.9, "accuracy": 0.9 + change / 100,
              "max_abs_diff": 0.1}
    return {"name": name, "description": name, "file": f"{name}.tflite", "size_bytes": 1000, "gzip_bytes": 900,
            "float32_weight_bytes": int(900 * compression), "conversion": parity, "parity": parity,
            "latency_ms_batch1": 0.3, "images_per_s_batch64": 3000.0, "compression": compression,
            "accuracy_change_pt": change}


def test_summary_picks_the_best_variant_within_half_a_point(bench, tmp_path):
    results = {"updated": "now", "machine": "test", "models": {
        "alexnet_2012.fashion_mnist": {"arch": "alexnet_2012", "family": "alexnet", "params": 10, "float_top1": 0.9,
                                       "test_examples": 100, "finetune_steps": 1, "variants": [
                                           _variant("int8", 4.0, -0.2), _variant("deep_compression", 40.0, -0.4),
                                           _variant("pruned", 60.0, -3.0),
                                           {"name": "x", "description": "x", "error": "ParityError: max |logit diff| 3.2"}]},
        "resnet20.fashion_mnist": {"arch": "resnet20", "family": "resnet", "params": 10, "float_top1": 0.9,
                                   "test_examples": 100, "finetune_steps": 1, "variants": [
                                       {**_variant("int8", 4.0, -0.7), "calibration_images": 1024}]},
        "googlenet.fashion_mnist": {"arch": "googlenet", "family": "googlenet", "params": 10, "float_top1": 0.9,
                                    "test_examples": 100, "variants": [_variant("int8", 4.0, -0.7),
                                                                       _variant("qat_int8", 4.0, -0.1)]},
    }, "inference": {"model.predict": 47.0, "tf.function": 2.4, "tflite_fp32": 0.37, "tflite_int8": 0.14}}
    summary = bench.summarize(results)
    assert summary["alexnet_2012.fashion_mnist"]["best"]["name"] == "deep_compression"
    assert summary["alexnet_2012.fashion_mnist"]["ratio_ok"] is True and summary["alexnet_2012.fashion_mnist"]["int8_ok"]
    assert summary["resnet20.fashion_mnist"]["best"] is None and not summary["resnet20.fashion_mnist"]["int8_ok"]
    assert summary["googlenet.fashion_mnist"]["int8_ok"]  # QAT recovered what post-training quantization lost
    path = tmp_path / "compression.md"
    bench.write_markdown(results, str(path))
    text = path.read_text()
    assert "| `alexnet_2012.fashion_mnist` | 40.0x (`deep_compression`) | -0.40 | 35x | ✓ | -0.20 | – | ✓ | – |" in text
    assert "2.64x** faster than TFLite float32" in text
    assert "| failed: ParityError: max &#124;logit diff&#124; 3.2 |" in text  # a pipe would split the table's cell
    assert "| `int8` | int8 (calibrated on 1,024 images) |" in text and text.count("calibrated on 1,024") == 1
    assert summary["alexnet_2012.fashion_mnist"]["int8_speedup"] is None  # no float32 row to compare with


def test_a_partial_run_replaces_its_variants_and_keeps_the_others(bench):
    old = {"arch": "resnet20", "family": "resnet", "params": 10, "float_top1": 0.9, "test_examples": 100,
           "note": "kept", "variants": [_variant("deep_compression", 9.0, -1.0), _variant("float32", 1.0, 0.0),
                                        _variant("int8", 4.0, -0.2)]}
    new = {**{k: v for k, v in old.items() if k != "note"}, "test_examples": 10_000,
           "variants": [_variant("deep_compression", 12.0, -0.3)]}
    merged = bench.merge_model(old, new)
    assert [(v["name"], v["compression"]) for v in merged["variants"]] == [
        ("float32", 1.0), ("int8", 4.0), ("deep_compression", 12.0)]  # in plan order
    assert merged["note"] == "kept" and merged["test_examples"] == 10_000
    assert bench.merge_model(None, new) is new


def test_the_fine_tuning_column_says_what_each_stage_trained(bench):
    deep = bench.plans_for("alexnet")[-1]
    assert deep.describe() == ("prune 84% (conv1: 0%, conv2: 70%, fc6: 98.5%, fc7: 98%, predictions: 60%) + 16 clusters "
                               "+ QAT int8, distilled")
    assert bench.finetune_label(deep, None) == ("epochs: prune 20, cluster 1, qat 1 (full epochs); QAT at 0.1x the "
                                                "rate; distilled from the float model")
    cosine = dataclasses.replace(deep, schedule="cosine")
    assert bench.finetune_label(cosine, None).endswith("(full epochs); cosine learning rate; QAT at 0.1x the rate; "
                                                       "distilled from the float model")
    row = {"stage_accuracy": {"prune": 0.9134, "cluster": 0.915, "qat": 0.9165}}
    assert bench.stages_label(row) == "prune 91.34%, cluster 91.50%, qat 91.65%"
    assert bench.stages_label({}) == ""
    standard = {p.name: p for p in bench.plans_for("resnet")}
    assert bench.finetune_label(standard["pruned"], 300) == "epochs: prune 1 (300 steps)"
    assert bench.finetune_label(standard["int8"], 300) == "none"


def test_each_model_is_saved_as_it_finishes_over_what_others_saved_meanwhile(bench, tmp_path, monkeypatch):
    import json

    path, docs = tmp_path / "results.json", tmp_path / "compression.md"
    model = {"arch": "resnet20", "family": "resnet", "params": 10, "float_top1": 0.9, "test_examples": 100}
    path.write_text(json.dumps({"models": {"old": {**model, "variants": [_variant("float32", 1.0, 0.0)]}}}))

    def run_model(name, **kwargs):  # meanwhile, another run saves a model of its own
        saved = json.loads(path.read_text())
        saved["models"]["other"] = {**model, "variants": [_variant("int8", 4.0, -0.1)]}
        path.write_text(json.dumps(saved))
        return {**model, "weights": name, "variants": [_variant("int8", 3.9, -0.2)]}

    monkeypatch.setattr(bench, "run_model", run_model)
    assert bench.main(["--models", "resnet20", "--no-inference", "--json", str(path), "--docs", str(docs)]) == 0
    saved = json.loads(path.read_text())
    assert set(saved["models"]) == {"old", "other", "resnet20.fashion_mnist"}
    assert "## `resnet20.fashion_mnist`" in docs.read_text()
