"""IDX files (MNIST's format): read and check them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import mnist
import numpy as np

from pipeline.data.errors import DataError

if TYPE_CHECKING:
    import os

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read one (optionally gzipped) IDX file after checking its structure.

    Parameters
    ----------
    path : Path
    magic : int
        2051 for images (3 dims, 28 x 28 expected), 2049 for labels (1 dim).

    Returns
    -------
    ndarray of uint8, shape (n, 28, 28) or (n,)
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = f.read(4)
            if len(header) < 4 or struct.unpack(">I", header)[0] != magic:
                found = struct.unpack(">I", header)[0] if len(header) == 4 else "nothing"
                raise DataError(
                    f"{path}: not an IDX {'image' if magic == IMAGES_MAGIC else 'label'} "
                    f"file (magic number {found}, expected {magic})"
                )
            f.seek(0)
            data = mnist.parse_idx(f)
    except (OSError, EOFError, mnist.IdxDecodeError, struct.error) as exc:
        raise DataError(f"{path}: corrupt or truncated IDX file ({exc}); delete it to fetch it again") from None
    if magic == IMAGES_MAGIC and data.shape[1:] != (28, 28):
        raise DataError(f"{path}: images are {data.shape[1:]}, expected 28 x 28")
    return data.astype(np.uint8, copy=False)


def load_idx_arrays(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) from an IDX directory; X scaled to [0, 1] float32."""
    directory = Path(directory)
    arrays = {}
    for key, filename in IDX_FILES.items():
        arrays[key] = read_idx(directory / filename, IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC)
    for part in ("train", "test"):
        n_images, n_labels = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if n_images != n_labels:
            raise DataError(f"{directory}: {n_images} {part} images but {n_labels} labels")
        if n_images == 0:
            raise DataError(f"{directory / IDX_FILES[f'{part}_images']}: holds no images (a valid header for 0)")
    scale = np.float32(1 / 255)

    def flat(images):
        return images.reshape(len(images), -1).astype(np.float32) * scale

    return (
        flat(arrays["train_images"]),
        arrays["train_labels"].astype(np.int64),
        flat(arrays["test_images"]),
        arrays["test_labels"].astype(np.int64),
    )
