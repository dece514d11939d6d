"""How models leave: SavedModel, pruning, clustering, quantization, low rank, TFLite, and their checks.

    >>> from export import pipeline, tflite
    >>> data = pipeline.load_export_data("fashion_mnist")  # doctest: +SKIP
    >>> result = pipeline.export_variant(model, pipeline.Plan("int8", quantize="int8"), data=data, out_dir="out")  # doctest: +SKIP

Modules (each imports TensorFlow Model Optimization only when used):

- `export.saved_model`: SavedModel with a raw-image serving signature and metadata;
- `export.prune`, `export.cluster`, `export.quantize`, `export.low_rank`: the transforms and their fine-tuning;
- `export.tflite`: conversion (float32, FP16, dynamic range, int8), the LiteRT interpreter, parity checks;
- `export.pipeline`: plans composed in order, converted, verified and measured.

Importing ``export`` imports `zoo` first, which sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads.
"""

import zoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)

__all__ = ["cluster", "low_rank", "pipeline", "prune", "quantize", "saved_model", "tflite"]
