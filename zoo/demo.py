"""``make demo``: load the default pretrained model, evaluate it on Fashion-MNIST, show its predictions.

    $ python -m zoo.demo [--weights ARCH.TAG] [--out DIR]

No training: the weights ship in the package (``zoo/weights/``, sha256-checked on load). The model
runs through `zoo.Predictor`, the package's fast path (the float32 model with its normalization,
converted once to TFLite and run by the LiteRT interpreter), on the real Fashion-MNIST test set, or,
when no Fashion-MNIST source is installed, on the 100 sample images shipped with the package (the
demo says which). It prints the accuracy (and the accuracy recorded in the weights' metadata), a few
predictions, and writes ``samples.png`` (images with predicted and true labels) and
``confusion_matrix.png`` to ``demo_out/``. About a minute on two cores, most of it TensorFlow's start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import zoo
from zoo._files import write_png
from zoo._quiet import import_tensorflow

OUT_DIR = "demo_out"
DEFAULT_WEIGHTS = "resnet20.fashion_mnist"


def _test_set(meta):
    """Raw test images and labels: the full test split, or the package's sample; and where they came from."""
    from training.data import load_dataset

    try:
        data, info = load_dataset(meta.provenance.dataset, "test", batch_size=2048, normalize=False, shuffle=False)
    except (OSError, ValueError, ImportError) as err:  # no source: the error lists those tried
        from zoo._weights import sample_images

        images, labels = sample_images(meta.provenance.dataset)
        print(f"The {meta.provenance.dataset} test set is not available here ({err}).\nEvaluating on the "
              f"{len(labels)} sample test images shipped in the package instead (10 per class).\n")
        return np.asarray(images, np.float32), np.asarray(labels), "the package's sample"
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in data))
    return np.round(np.concatenate(images) * 255.0), np.concatenate(labels), f"{info.source}, the full test split"


def samples_png(images, labels, predicted, probabilities, class_names, path, *, count: int = 24) -> str:
    """A grid of ``count`` images titled with the predicted label (its probability) and the true one."""
    from training.plots import _figure

    cols = 8
    rows = -(-min(count, len(images)) // cols)
    fig = _figure((cols * 1.6, rows * 1.9))
    for i in range(min(count, len(images))):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(np.squeeze(images[i]), cmap="gray_r", vmin=0, vmax=255)
        ok = predicted[i] == labels[i]
        ax.set_title(f"{class_names[predicted[i]]} {probabilities[i]:.0%}\n(true: {class_names[labels[i]]})",
                     fontsize=7, color="black" if ok else "crimson")
        ax.axis("off")
    fig.suptitle("Predicted (probability) and true labels; wrong ones in red", fontsize=9)
    fig.tight_layout()
    write_png(path, fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help=f"pretrained weights (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--out", default=OUT_DIR, help=f"where the PNGs go (default: {OUT_DIR})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import_tensorflow()  # without its start-up notices

    families = zoo.list_families()
    print(f"keras-zoo {zoo.__version__}: {len(zoo.list_models())} models in {len(families)} families; pretrained "
          f"weights for {len(zoo.list_pretrained())}: {', '.join(zoo.list_pretrained())}.")
    print("`zoo list --pretrained` prints them with params and FLOPs; docs/pretrained.md has each one's recipe.\n")

    try:
        meta = zoo.get_weights_info(args.weights)
    except ValueError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    predictor = zoo.Predictor.from_pretrained(meta.name)
    print(f"Loaded {meta.name}: {meta.metrics.params:,} params, {meta.source.size_bytes / 1e6:.2f} MB, sha256 "
          f"{meta.source.sha256[:16]}... verified; trained by `{meta.provenance.command}`.")
    print(f"Running on the fast path: TFLite float32 in the LiteRT interpreter ({predictor.backend}).\n")

    images, labels, source = _test_set(meta)
    start = time.perf_counter()
    result = predictor(images, batch_size=256)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(result.class_ids == labels))
    names = meta.head.class_names
    print(f"Test accuracy on {len(labels):,} images ({source}): {accuracy:.2%}  "
          f"({len(labels) / seconds:,.0f} images/s)")
    if len(labels) == meta.metrics.num_examples:
        print(f"The weights' metadata records {meta.metrics.top1:.2%} on the same images (zoo eval, Keras float32).")
    print("\nA few predictions:")
    for i in range(8):
        mark = "" if result.class_ids[i] == labels[i] else "   <- wrong"
        print(f"  image {i}: {result.labels[i]:<12s} ({result.probabilities[i].max():.1%})  true: {names[labels[i]]}"
              f"{mark}")

    from training.plots import confusion_matrix_png

    os.makedirs(args.out, exist_ok=True)
    matrix = np.zeros((len(names), len(names)), np.int64)
    np.add.at(matrix, (labels, result.class_ids), 1)
    confusion = confusion_matrix_png(matrix, os.path.join(args.out, "confusion_matrix.png"), class_names=names,
                                     title=f"{meta.name} on {source}")
    samples = samples_png(images, labels, result.class_ids, result.probabilities.max(-1), names,
                          os.path.join(args.out, "samples.png"))
    print(f"\nWrote {samples} and {confusion}.")
    print(f"Evaluate with Keras: zoo eval {meta.arch} --weights {meta.name} --dataset {meta.provenance.dataset}")
    print(f"Export for devices:  zoo export {meta.arch} --weights {meta.name} --quantize int8 --out exports/{meta.arch}")
    print(f"The demo took {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
