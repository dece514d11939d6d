from zoo.models.alexnet import alexnet  # noqa: F401  (registers the family)
