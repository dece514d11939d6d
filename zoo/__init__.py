"""keras-zoo: the CS231n case-study models in tf_keras, by name.

    >>> import zoo
    >>> zoo.list_models("resnet*")[:3]
    ['resnet18', 'resnet20', 'resnet32']
    >>> model = zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10)
    >>> len(zoo.list_pretrained()), zoo.list_pretrained("resnet*")
    (11, ['resnet20.fashion_mnist'])
    >>> trained = zoo.create_model("resnet20", weights="DEFAULT")  # doctest: +SKIP

Importing ``zoo`` is cheap: it sets ``TF_USE_LEGACY_KERAS=1`` (TFMOT and tf-agents only work
with the Keras 2 API, ``tf_keras``) and defers TensorFlow and the model families until the
registry is first used.
"""

import os as _os
import sys as _sys
import warnings as _warnings



def _tf_keras_is_keras_3() -> bool:
    """Whether ``tf.keras`` is already Keras 3: TensorFlow resolves it on first use, by ``TF_USE_LEGACY_KERAS``
    as it is then, so TensorFlow imported before zoo is fine until something touches ``tf.keras``."""
    keras = vars(_sys.modules["tensorflow"]).get("keras") if "tensorflow" in _sys.modules else None
    if type(keras).__name__ == "KerasLazyLoader":  # tensorflow.python.util.lazy_loader
        return vars(keras).get("_tfll_keras_version") == "keras_3"
    # Resolved (``from tensorflow.keras import layers`` names it "tensorflow.keras"): Keras 3's shim is the package
    # keras/_tf_keras/keras/; Keras 2 is tf_keras.
    path = getattr(keras, "__file__", None) or ""
    return _os.path.normpath(path).split(_os.sep)[-4:-1] == ["keras", "_tf_keras", "keras"]


if _os.environ.get("TF_USE_LEGACY_KERAS") != "1" and _tf_keras_is_keras_3():
    _warnings.warn(
        "tf.keras was used before zoo was imported, without TF_USE_LEGACY_KERAS=1, so tf.keras is Keras 3. "
        "zoo builds every model with tf_keras; import zoo first (or export TF_USE_LEGACY_KERAS=1) "
        "so that tf.keras, TFMOT and tf-agents agree with it.",
        stacklevel=2,
    )
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo._registry import (  # noqa: E402  (the environment must be set first)
    ModelInfo,
    create_model,
    list_families,
    list_models,
    model_info,
    strip_training_outputs,
)
from zoo._predict import Prediction, Predictor, predict  # noqa: E402  (TensorFlow loads on first use)
from zoo._weights import PretrainedWeights, get_weights_info, list_pretrained, sample_images  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ModelInfo",
    "Prediction",
    "Predictor",
    "PretrainedWeights",
    "create_model",
    "get_weights_info",
    "list_families",
    "list_models",
    "list_pretrained",
    "model_info",
    "predict",
    "sample_images",
    "strip_training_outputs",
]
