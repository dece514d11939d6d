from zoo.models.squeezenet import squeezenet  # noqa: F401  (registers the family)
