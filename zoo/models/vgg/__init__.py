from zoo.models.vgg import vgg  # noqa: F401  (registers the family)
