"""Decoded IDX arrays cached as .npy files and memory-mapped, keyed by the IDX files' SHA-256.

Decoding MNIST-format gzip files takes about a second per process; every
worker of a parallel sweep would pay it again. The first load writes the
decoded arrays (atomically: a temporary file renamed into place, so two
processes writing at once both leave a whole file); later loads map them,
and every process shares the same pages of the operating system's cache.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.data.idx import IDX_FILES, load_idx_arrays

ARRAYS = ("X_train", "y_train", "X_test", "y_test")


def files_digest(directory):
    """SHA-256 over the four IDX files' bytes, in IDX_FILES order."""
    digest = hashlib.sha256()
    for filename in IDX_FILES.values():
        with open(Path(directory) / filename, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def decoded_idx_arrays(directory, cache_dir):
    """``load_idx_arrays(directory)``, memory-mapped from ``cache_dir/decoded/<digest>/`` when cached."""
    target = Path(cache_dir) / "decoded" / files_digest(directory)[:32]
    paths = [target / f"{name}.npy" for name in ARRAYS]
    if not all(p.is_file() for p in paths):
        arrays = load_idx_arrays(directory)  # checks every file's structure
        try:
            target.mkdir(parents=True, exist_ok=True)
            for path, array in zip(paths, arrays):
                fd, tmp = tempfile.mkstemp(dir=target, suffix=".npy.part")
                with os.fdopen(fd, "wb") as f:
                    np.save(f, array)
                os.replace(tmp, path)
        except OSError:  # a read-only cache: decode every time, as before
            return arrays
    return tuple(np.load(p, mmap_mode="r") for p in paths)
