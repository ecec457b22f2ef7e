"""Atomic file writes for the reproduction: a kill at any moment never leaves a truncated file."""

import os

import numpy as np

__all__ = ["atomic_write", "write_text", "save_npz", "remove_stale_temporaries"]


def atomic_write(path, write):
    """Write ``path`` through a temporary file in the same directory and a rename.

    ``write`` is called with the temporary path. ``os.replace`` is atomic, so a
    process killed at any moment leaves either the old file or the new one.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Atomically replace the text file ``path`` by ``text``."""

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def save_npz(path, **arrays):
    """Atomically replace ``path`` by an ``.npz`` archive of ``arrays``."""

    def write(tmp):
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def remove_stale_temporaries(directory):
    """Remove the temporary files that a killed run may have left in ``directory``."""
    for root, _, files in os.walk(directory):
        for name in files:
            if ".tmp-" in name:
                os.remove(os.path.join(root, name))
