"""Per-layer pruning sensitivity of the pretrained models (Deep Compression's fig. 5), measured.

Each prunable layer alone is magnitude-pruned to each sparsity, without fine-tuning, and the model
is scored on Fashion-MNIST test images (`export.prune.sensitivity`). The curves set the per-layer
sparsities of `export.pipeline.deep_compression_plan`. Run from the repository root::

    .venv/bin/python benchmarks/prune_sensitivity.py --models vgg11_bn alexnet_2012 --test-limit 2000

Writes ``benchmarks/results/prune_sensitivity.json`` (merged by model) and prints a table per model:
each layer's share of the weights and its top-1 change in points at each sparsity.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import zoo  # noqa: E402  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)
from zoo._files import write_json  # noqa: E402

DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results", "prune_sensitivity.json")


def measure(name: str, *, test_limit: int, sparsities: Sequence[float]) -> dict:
    import numpy as np

    from export import prune
    from training import load_dataset

    meta = zoo.get_weights_info(name)
    model = zoo.strip_training_outputs(zoo.create_model(meta.arch, weights=meta.tag))
    data, _ = load_dataset(meta.provenance.dataset, "test", batch_size=1024, shuffle=False, limit=test_limit,
                           image_size=tuple(meta.input.shape[:2]))
    images, labels = (np.concatenate(a) for a in zip(*((x.numpy(), y.numpy()) for x, y in data)))
    curves = prune.sensitivity(model, images, labels, sparsities=sparsities)
    total = sum(int(np.prod(w.shape)) for l in model.layers for w in prune.kernel_weights(l))
    share = {n: sum(int(np.prod(w.shape)) for w in prune.kernel_weights(model.get_layer(n))) / total
             for n in curves if n != "(none)"}
    return {"weights": name, "test_examples": int(len(labels)), "top1": curves.pop("(none)")[0.0],
            "layers": {n: {"share": share[n], "top1": {str(s): a for s, a in c.items()}} for n, c in curves.items()}}


def table(result: dict) -> str:
    sparsities = list(next(iter(result["layers"].values()))["top1"])
    lines = [f"{result['weights']}: top-1 {100 * result['top1']:.2f}% on {result['test_examples']} test images; "
             "change in points with one layer pruned",
             f"{'layer':24s} {'weights':>8s} " + " ".join(f"{float(s):>7.0%}" for s in sparsities)]
    for name, layer in result["layers"].items():
        lines.append(f"{name:24s} {layer['share']:8.1%} " + " ".join(
            f"{100 * (layer['top1'][s] - result['top1']):+7.2f}" for s in sparsities))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vgg11_bn", "alexnet_2012"])
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8, 0.9, 0.95, 0.98])
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    results = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            results = json.load(f)
    for name in args.models:
        result = measure(zoo.get_weights_info(name).name, test_limit=args.test_limit, sparsities=args.sparsities)
        results[result["weights"]] = result
        print(table(result), flush=True)
    write_json(args.json, results)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
