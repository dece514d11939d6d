"""Fashion-MNIST-shaped IDX files for tests: the real loader's file path, on generated images."""

import gzip
import os
import struct

import numpy as np


def write_idx(path, array, *, compress=False):
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}[array.dtype]
    big = array.astype(array.dtype.newbyteorder(">"))
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(raw)


def make_fashion_dir(directory, *, n_train=50, n_test=20, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), images, compress=compress)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), labels, compress=compress)
        arrays[prefix] = (images, labels)
    return arrays
