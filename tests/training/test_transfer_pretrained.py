"""Transfer learning from shipped weights: the Fashion-MNIST ResNet-20 fine-tuned on digits beats training from scratch.

The example of docs/transfer_learning.md, at test size: scikit-learn's 8x8 digits upsampled to 28x28,
640 training images, one epoch (20 steps) for both models with the same recipe and seed.
"""

import zoo
from training import Recipe, evaluate, finetune, fit, load_dataset

RECIPE = Recipe(optimizer="adam", learning_rate=1e-3, epochs=1, batch_size=32, seed=0)


def _digits(split, epoch=0):
    return load_dataset("digits", split, batch_size=32, image_size=(28, 28), seed=0, epoch=epoch,
                        limit=640 if split == "train" else None)[0]


def _tuned_accuracy(source, out_dir):
    model = finetune(source, 10, train_layers="all")
    model = fit(model, lambda epoch: _digits("train", epoch), recipe=RECIPE, out_dir=out_dir, verbose=0).model
    return evaluate(model, _digits("test")).accuracy


def test_pretrained_backbone_beats_scratch_with_the_same_steps(tmp_path):
    pretrained = _tuned_accuracy(zoo.create_model("resnet20", weights="fashion_mnist"), tmp_path / "pretrained")
    scratch = _tuned_accuracy(zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10), tmp_path / "scratch")
    assert pretrained > scratch + 0.2, (pretrained, scratch)
    assert pretrained > 0.6
