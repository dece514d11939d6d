"""``make demo``: the model table, then one model built and run on a batch.

    $ python -m zoo.demo [NAME]
"""

from __future__ import annotations

import sys
import time

import zoo

DEFAULT_MODEL = "resnet20"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv else DEFAULT_MODEL
    from zoo._docs import models_table

    print(f"keras-zoo {zoo.__version__}: {len(zoo.list_models())} models in {len(zoo.list_families())} families\n")
    for line in models_table(zoo.list_models()):
        print(line)

    import numpy as np

    print(f"\nBuilding {name} for Fashion-MNIST-shaped input (28x28x1, 10 classes) ...")
    start = time.perf_counter()
    model = zoo.create_model(name, input_shape=(28, 28, 1), num_classes=10, classifier_activation="softmax")
    built = time.perf_counter() - start
    info = zoo.model_info(name, input_shape=(28, 28, 1))
    batch = np.random.default_rng(0).uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    probs = model(batch, training=False).numpy()
    print(f"{name}: {model.count_params():,} params, {info.macs / 1e6:.1f}M MACs per image, built in {built:.1f}s")
    print(f"forward pass on a batch of 8: output {probs.shape}, rows sum to {probs.sum(axis=1).round(4).tolist()}")
    print("(random weights: pretrained weights arrive with the pretrained-weights issue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
