from zoo.models.wide_resnet import wide_resnet  # noqa: F401  (registers the family)
