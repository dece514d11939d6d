"""The model families; importing this package registers all of them.

One folder per family: the architecture file (blocks, stages, builder, registered variants) and,
once it ships weights, a weights file that is pure data.
"""

from zoo.models import (  # noqa: F401  (imported to register)
    alexnet,
    densenet,
    fractalnet,
    googlenet,
    nin,
    resnet,
    resnext,
    squeezenet,
    stochastic_depth,
    vgg,
    wide_resnet,
)
