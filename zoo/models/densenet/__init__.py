"""DenseNet; importing this package registers the ImageNet and CIFAR (DenseNet-BC) variants."""

from zoo.models.densenet import densenet  # noqa: F401  (imported to register)
