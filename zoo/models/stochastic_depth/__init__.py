from zoo.models.stochastic_depth import stochastic_depth  # noqa: F401  (registers the family)
