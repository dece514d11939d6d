"""The names a compression plan accepts, in a module without TensorFlow so that `zoo export`'s
argument parser and `export.pipeline.Plan`'s validation read the same tuples."""

QUANTIZE = ("none", "fp16", "dynamic", "int8", "qat")
STAGES = ("low_rank", "prune", "cluster", "qat")  # the fine-tuning stages, in the order `compress` runs them
LR_SCHEDULES = ("constant", "cosine")  # a stage's learning rate when it replaces the recipe's schedule
CALIBRATION_IMAGES = 256  # training images that calibrate an int8 conversion, unless told otherwise
