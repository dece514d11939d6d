from zoo.models.resnet import resnet  # noqa: F401  (registers the family)
