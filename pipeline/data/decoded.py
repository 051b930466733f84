"""Decoded IDX arrays cached as .npy files and memory-mapped, keyed by the IDX files' SHA-256.

Decoding MNIST-format gzip files takes about a second per process; every
worker of a parallel sweep would pay it again. The first load writes the
decoded arrays (atomically: a temporary file renamed into place, so two
processes writing at once both leave a whole file); later loads map them,
and every process shares the same pages of the operating system's cache.
The validation split of a cached training set is cached beside it the same
way, per (validation rows, seed): each worker would otherwise copy its own
(0.3 s and 200 MB per worker for Fashion-MNIST).

scikit-learn's bundled and fetched datasets are kept here too, per scikit-learn version, loader,
test fraction and seed (``cached_arrays``): their splits then come from the cache, and a sweep's
workers never import scikit-learn (0.45 s each), nor does a later sweep's pre-flight.
"""

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.idx import IDX_FILES, load_idx_arrays

log = logging.getLogger("pipeline")
ARRAYS = ("X_train", "y_train", "X_test", "y_test")
CONTENT_HASH = "content_hash"  # files beside a cached split: its dataset's content hash (``Dataset``)


def files_digest(directory: str | os.PathLike) -> str:
    """SHA-256 over the four IDX files' bytes, in IDX_FILES order."""
    digest = hashlib.sha256()
    for filename in IDX_FILES.values():
        with open(Path(directory) / filename, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def decoded_idx_arrays(
    directory: str | os.PathLike, cache_dir: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``load_idx_arrays(directory)``, memory-mapped from ``cache_dir/decoded/<digest>/`` when cached."""
    target = Path(cache_dir) / "decoded" / files_digest(directory)[:32]
    return cached_arrays(target, lambda: load_idx_arrays(directory))  # load_idx_arrays checks every file


def cached_arrays(target: str | os.PathLike, build: Callable[[], tuple]) -> tuple:
    """(X_train, y_train, X_test, y_test) memory-mapped from ``target`` (a directory under
    ``<cache>/decoded/``), or ``build()``'s, saved there first when absent or damaged."""
    cached = _load_arrays(Path(target), ARRAYS)
    if cached is not None:
        return cached
    return _save_arrays(Path(target), ARRAYS, build())


def cached_split(
    X: np.ndarray, y: np.ndarray, n_val: int, seed: int, stratify: bool, split: Callable[..., tuple]
) -> tuple:
    """``split(X, y, n_val, seed, stratify)``, cached beside X when X is mapped from this cache.

    Returns (X_train, y_train, X_val, y_val), memory-mapped when cached. Any other X is split as is.
    """
    target = split_dir(X, n_val, seed, stratify)
    if target is None:
        return split(X, y, n_val, seed, stratify)
    names = ("X_train", "y_train", "X_val", "y_val")
    cached = _load_arrays(target, names)
    if cached is not None:
        return cached
    for stale in target.glob(f"{CONTENT_HASH}*"):  # of the split being rebuilt
        stale.unlink(missing_ok=True)
    return _save_arrays(target, names, split(X, y, n_val, seed, stratify))


def split_dir(X: np.ndarray, n_val: int, seed: int, stratify: bool) -> Path | None:
    """The directory ``cached_split`` keeps X's split in, or None when X is not mapped from this cache."""
    source = Path(getattr(X, "filename", None) or "")
    if source.name != "X_train.npy" or source.parent.parent.name != "decoded":
        return None
    return source.parent / f"split-{n_val}-{seed}-{'stratified' if stratify else 'shuffled'}"


def content_hash_file(split_at: Path, standardized: bool) -> Path:
    """Where the content hash of the dataset built from the split at ``split_at`` is kept."""
    return split_at / f"{CONTENT_HASH}{'-standardized' if standardized else ''}"


def kept_hash(path: Path | None) -> str | None:
    """The content hash kept at ``path`` (16 hex digits), or None when there is none (or it is damaged)."""
    try:
        text = path.read_text().strip() if path is not None else ""
    except OSError:
        return None
    return text if re.fullmatch("[0-9a-f]{16}", text) else None


def keep_hash(path: Path, value: str) -> None:
    """Keep a content hash at ``path``; a read-only cache keeps none."""
    try:
        _write_atomically(path, lambda f: f.write(value.encode()))
    except OSError:
        pass


def _write_atomically(path: Path, write: Callable) -> None:
    """``write(f)`` into a temporary file beside ``path``, renamed into place: processes writing at
    once each leave a whole file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _load_arrays(target, names):
    """The cached arrays, memory-mapped; None when absent or damaged (then the caller rebuilds them).

    Checked: every file's header and size (``np.load`` maps exactly what the header says), and that
    features and targets pair up, (n, d) with (n,). A damaged entry is said in one line.
    """
    paths = [target / f"{name}.npy" for name in names]
    if not all(p.is_file() for p in paths):
        return None
    try:
        arrays = tuple(np.load(p, mmap_mode="r", allow_pickle=False) for p in paths)
        for X, y in zip(arrays[::2], arrays[1::2]):
            if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or X.shape[1] != arrays[0].shape[1]:
                raise ValueError(f"arrays of shapes {X.shape} and {y.shape} do not pair up")
    except (OSError, ValueError, EOFError) as exc:
        log.warning(f"the decoded-data cache {target} is damaged ({str(exc).splitlines()[0]}); rebuilding it")
        return None
    return arrays


def _save_arrays(target, names, arrays):
    """Write each array atomically; returns them memory-mapped (or as given when the cache is read-only)."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, array in zip(names, arrays):
            _write_atomically(target / f"{name}.npy", lambda f, array=array: np.save(f, array))
    except OSError:  # a read-only cache: decode (or split) every time, as before
        return tuple(arrays)
    return _load_arrays(target, names)
