from zoo.models.resnext import resnext  # noqa: F401  (registers the family)
