"""Plans end to end (transform, fine-tune, convert, verify, measure) and the `zoo export` command."""

import json
import subprocess
import sys

import numpy as np
import pytest

import _data
from export import pipeline, tflite


@pytest.fixture(scope="module")
def data():
    images, labels = _data.pixels(128, seed=7)
    return pipeline.ExportData(train=lambda epoch: _data.train_data(epoch, steps=3), representative=images[:32],
                               test_images=images, test_labels=labels, mean=_data.MEAN, std=_data.STD)


@pytest.fixture(scope="module")
def trained():
    return _data.trained_model()


def test_a_combined_plan_is_compressed_converted_verified_and_measured(trained, data, tmp_path):
    plan = pipeline.Plan("deep", prune=0.5, cluster=8, quantize="qat", distill=True, schedule="cosine")
    result = pipeline.export_variant(trained, plan, data=data, out_dir=tmp_path, max_accuracy_drop=5.0,
                                     latency_runs=3)
    flat = (tmp_path / "deep.tflite").read_bytes()
    assert result.size_bytes == len(flat) and result.gzip_bytes == tflite.gzip_size(flat)
    assert result.float32_weight_bytes == 4 * sum(int(np.prod(w.shape)) for w in trained.weights)
    assert result.compression > 4  # int8 alone is 4x; zeros and 8 shared values compress further
    assert result.conversion.top1_agreement >= 0.98 and result.parity.float_accuracy > 0.9
    assert result.latency_ms_batch1 > 0 and result.images_per_s_batch64 > 0
    assert result.description == "prune 50% + 8 clusters + QAT int8, distilled"
    recipes = {stage: json.loads((tmp_path / "runs" / "deep" / stage / "recipe.json").read_text())  # the shared loop's
               for stage in ("prune", "qat")}
    assert recipes["prune"]["schedule"]["kind"] == "cosine"
    assert recipes["prune"]["learning_rate"] == pipeline.finetune_recipe().learning_rate
    assert recipes["qat"]["learning_rate"] == pytest.approx(
        pipeline.finetune_recipe().learning_rate * pipeline.QAT_LEARNING_RATE_SCALE)  # from calibrated ranges
    assert list(result.stage_accuracy) == ["prune", "cluster", "qat"]  # Keras accuracy after each stage
    assert result.stage_accuracy["qat"] == pytest.approx(result.conversion.float_accuracy)
    assert result.calibration_images == len(data.representative) == 32  # QAT conversion calibrates too


def test_a_failed_parity_check_writes_nothing(data, tmp_path):
    untrained = _data.model()
    broken = pipeline.ExportData(train=data.train, representative=data.representative, test_images=data.test_images,
                                 test_labels=(data.test_labels + 1) % _data.CLASSES, mean=data.mean, std=data.std)
    pruned = pipeline.Plan("p", prune=0.9)
    with pytest.raises(tflite.ParityError):
        # labels shifted: the pruned untrained model's accuracy and the float one's differ at random;
        # insist on an impossible agreement instead, so the check must fail
        pipeline.export_variant(untrained, pruned, data=broken, out_dir=tmp_path, max_accuracy_drop=None,
                                min_conversion_agreement=1.01, latency_runs=1)
    assert not (tmp_path / "p.tflite").exists()


def test_plans_validate_their_values():
    with pytest.raises(ValueError, match="unknown quantize 'int4'; accepted: none, fp16, dynamic, int8, qat"):
        pipeline.Plan("x", quantize="int4")
    with pytest.raises(ValueError, match=r"prune must be a sparsity in \(0, 1\); received 1.5"):
        pipeline.Plan("x", prune=1.5)
    with pytest.raises(ValueError, match=r"m_by_n must be \(m, n\) with 0 < m < n"):
        pipeline.Plan("x", m_by_n=(4, 2))
    with pytest.raises(ValueError, match="fine-tunes: pass train data"):
        pipeline.compress(_data.model(), pipeline.Plan("x", cluster=4))
    assert [p.name for p in pipeline.STANDARD_PLANS][:5] == ["float32", "fp16", "dynamic", "int8", "qat_int8"]
    with pytest.raises(ValueError, match="unknown fine-tuning stage 'pruning' in epochs; accepted: low_rank, prune"):
        pipeline.Plan("x", prune=0.5, epochs={"pruning": 2})
    with pytest.raises(ValueError, match=r"epochs\['prune'\] must be an int >= 1; received 0"):
        pipeline.Plan("x", prune=0.5, epochs={"prune": 0})
    with pytest.raises(ValueError, match="prune_layers .* refine prune: give prune too"):
        pipeline.Plan("x", prune_layers=(("dense*", 0.9),))
    with pytest.raises(ValueError, match=r"sparsities must be in \[0, 1\); received \[\('d', 1.0\)\]"):
        pipeline.Plan("x", prune=0.5, prune_layers=(("d", 1.0),))
    with pytest.raises(ValueError, match=r"distill applies to fine-tuning; plan 'x' \(PTQ int8\) has none"):
        pipeline.Plan("x", quantize="int8", distill=True)
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine or None .*; received 'step'"):
        pipeline.Plan("x", prune=0.5, schedule="step")


def test_per_layer_sparsity_and_stage_epochs_reach_the_transforms(tmp_path):
    from export import prune

    model = _data.model()
    conv = [l.name for l in model.layers if type(l).__name__ == "Conv2D"]
    dense = [l.name for l in model.layers if type(l).__name__ == "Dense"]
    plan = pipeline.Plan("p", prune=0.5, prune_layers=((dense[0], 0.9),), epochs={"prune": 2})
    assert plan.describe() == f"prune 50% ({dense[0]}: 90%) + float32"
    out = pipeline.compress(model, plan, train=lambda epoch: _data.train_data(epoch, steps=10), work_dir=tmp_path)
    zeros = prune.sparsity(out)
    assert zeros[dense[0]] == pytest.approx(0.9, abs=0.01) and zeros[conv[1]] == pytest.approx(0.5, abs=0.02)
    # the stem stays dense (an edge layer no pattern names); the classifier, named, is pruned
    assert prune.edge_layers(model) == (conv[0], dense[0]) and zeros[conv[0]] == 0.0
    state = json.loads((tmp_path / "prune" / "state.json").read_text())
    assert state["step"] == 20 and len(state["history"]) == 2  # two epochs of 10 steps


def _zoo(*args, cwd):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (["--prune", "1.5"], "prune must be a sparsity in (0, 1); received 1.5"),
    (["--m-by-n", "2-4"], "expected M:N such as 2:4"),
    (["--all", "--cluster", "8"], "--all exports preset variants; leave out --prune"),
    (["--deep-compression", "--quantize", "int8"], "--deep-compression exports preset variants"),
    (["--prune-layer", "fc*=0.9"], "--prune-layer refines --prune; give --prune too"),
    (["--prune", "0.5", "--prune-layer", "fc*"], "expected GLOB=SPARSITY such as 'fc*=0.95'; received 'fc*'"),
    (["--prune", "0.5", "--epochs", "pruning=2"], "unknown fine-tuning stage 'pruning' in epochs"),
    (["--prune", "0.5", "--epochs", "prune=two"], "--epochs prune=N needs a whole number of epochs; received 'two'"),
    (["--quantize", "int4"], "invalid choice: 'int4'"),
    (["--prune", "0.5", "--lr-schedule", "step"], "invalid choice: 'step'"),
    (["--finetune-steps", "0"], "--finetune-steps must be a positive integer"),
    (["--calibration", "0"], "--calibration must be a positive integer; received 0"),
])
def test_cli_rejects_bad_arguments_in_one_line(args, message, tmp_path):
    done = _zoo("export", "resnet20", "--out", str(tmp_path / "out"), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(("zoo: error:", "zoo export: error:")) and message in last


def test_cli_exports_pretrained_weights(tmp_path):
    done = _zoo("export", "resnet20", "--weights", "fashion_mnist", "--dataset", "synthetic", "--quantize", "dynamic",
                "--prune", "0.5", "--prune-layer", "stage3*=0.9", "--epochs", "prune=2", "--lr-schedule", "cosine",
                "--finetune-steps", "2",
                "--test-limit", "64", "--max-accuracy-drop", "100", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert [(v["name"], v["description"]) for v in report["variants"]] == [
        ("pruned_dynamic", "prune 50% (stage3*: 90%) + dynamic-range int8")]
    assert (tmp_path / "out" / "pruned_dynamic.tflite").stat().st_size == report["variants"][0]["size_bytes"]
    state = json.loads((tmp_path / "out" / "runs" / "pruned_dynamic" / "prune" / "state.json").read_text())
    assert state["step"] == 4  # two epochs of two steps
    recipe = json.loads((tmp_path / "out" / "runs" / "pruned_dynamic" / "prune" / "recipe.json").read_text())
    assert recipe["schedule"]["kind"] == "cosine" and recipe["epochs"] == 2
