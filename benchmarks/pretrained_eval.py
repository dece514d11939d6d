"""Re-evaluates every shipped pretrained weight on its test set and checks it against its metadata.

Issue 4, item 4. Run from the repository root (a few minutes; the full Fashion-MNIST test set per model)::

    .venv/bin/python benchmarks/pretrained_eval.py [ARCH.TAG ...]

Each weight file is loaded the way users load it (`zoo.create_model(arch, weights=tag)`, sha256 checked),
evaluated by the project's evaluation (`training.runs.evaluate_weights`, what ``zoo eval`` runs), and
its top-1 compared with the metadata's: a difference above 0.1 points fails (exit status 1).
"""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import zoo  # noqa: E402

TOLERANCE_PT = 0.1


def check(name: str) -> tuple[bool, str]:
    from training.runs import RunSpec, evaluate_weights

    meta = zoo.get_weights_info(name)
    start = time.perf_counter()
    spec = RunSpec(model=meta.arch, dataset=meta.provenance.dataset, options=meta.provenance.options_dict,
                   input_shape=tuple(meta.input.shape), num_classes=meta.head.num_classes)
    result = evaluate_weights(spec, weights=meta.name)
    diff = 100 * (result.accuracy - meta.metrics.top1)
    ok = abs(diff) <= TOLERANCE_PT and result.num_examples == meta.metrics.num_examples
    return ok, (f"{meta.name:40s} measured {result.accuracy:.2%} on {result.num_examples:,}  metadata "
                f"{meta.metrics.top1:.2%} on {meta.metrics.num_examples:,}  diff {diff:+.2f} pt  "
                f"{'ok' if ok else 'MISMATCH'}  ({time.perf_counter() - start:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    names = argv if argv else zoo.list_pretrained()
    failures = 0
    for name in names:
        ok, line = check(name)
        failures += not ok
        print(line, flush=True)
    print(f"{len(names) - failures}/{len(names)} within {TOLERANCE_PT} points of their metadata")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
