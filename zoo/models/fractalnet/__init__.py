"""FractalNet; importing this package registers ``fractalnet20``, ``fractalnet40`` and ``fractalnet34``."""

from zoo.models.fractalnet import fractalnet  # noqa: F401  (imported to register)
