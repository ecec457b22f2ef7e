"""Datasets: bundled real MNIST, the official IDX files, scikit-learn's digits."""

from ._idx import read_idx
from ._mnist import load_digits, load_mnist, load_mnist_idx

__all__ = ["load_mnist", "load_mnist_idx", "load_digits", "read_idx"]
