"""GoogLeNet (Inception v1); importing this package registers ``googlenet``."""

from zoo.models.googlenet import googlenet  # noqa: F401  (imported to register)
