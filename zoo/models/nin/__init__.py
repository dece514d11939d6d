from zoo.models.nin import nin  # noqa: F401  (registers the family)
