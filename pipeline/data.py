"""Datasets: find or download the files, validate them, split train/validation/test.

Every loader returns a ``Dataset`` with float32 features. Errors a user can
fix (missing files, no network, a corrupt file) raise ``DataError`` with one
line that says what to do.
"""

import gzip
import hashlib
import logging
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mnist
import numpy as np

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset can come from: local system dirs, then mirrors (MD5-checked)."""

    mirrors: tuple
    md5: dict
    system_dirs: tuple = ()


IDX_SOURCES = {
    "mnist": IdxSource(
        # The mnist package's own host (yann.lecun.com) no longer serves the files.
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        md5={"train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
             "test_images": "9fb629c4189551a2d022fa330f9573f3", "test_labels": "ec29112dd5afa0611ce80d1b7f02629c"},
    ),
    "fashion_mnist": IdxSource(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={"train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
             "test_images": "bef4ecab320f06d8554ea6380940ec79", "test_labels": "bb300cfdad3c16e7a12a480ee83cd310"},
        # Debian's dataset-fashion-mnist package: the full set, offline.
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


class DataError(Exception):
    """A dataset could not be found, fetched or read; the message says what to do."""


@dataclass
class Dataset:
    """A dataset split three ways. X arrays: (n, n_features) float32.

    y arrays: (n,) int64 class labels, or (n,) float32 targets for regression.
    """

    name: str
    task: str  # "multiclass" or "regression"
    n_classes: int | None
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def n_features(self):
        return self.X_train.shape[1]

    @property
    def n_outputs(self):
        return self.n_classes if self.task == "multiclass" else 1

    def content_hash(self):
        """SHA-256 (first 16 hex digits) over every array, so runs on the same data can be matched."""
        digest = hashlib.sha256()
        for array in (self.X_train, self.y_train, self.X_val, self.y_val, self.X_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]


def default_cache_dir():
    """$FNN_SWEEP_DATA_DIR, else $XDG_CACHE_HOME/fnn-sweep, else ~/.cache/fnn-sweep."""
    if os.environ.get("FNN_SWEEP_DATA_DIR"):
        return Path(os.environ["FNN_SWEEP_DATA_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fnn-sweep"


# ---- IDX files ----

def read_idx(path, magic):
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
                raise DataError(f"{path}: not an IDX {'image' if magic == IMAGES_MAGIC else 'label'} "
                                f"file (magic number {found}, expected {magic})")
            f.seek(0)
            data = mnist.parse_idx(f)
    except (OSError, EOFError, mnist.IdxDecodeError, struct.error) as exc:
        raise DataError(f"{path}: corrupt or truncated IDX file ({exc}); delete it to fetch it again") from None
    if magic == IMAGES_MAGIC and data.shape[1:] != (28, 28):
        raise DataError(f"{path}: images are {data.shape[1:]}, expected 28 x 28")
    return data.astype(np.uint8, copy=False)


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(urls, destination, md5, timeout=30):
    """Fetch one file from the first URL that serves it with the right MD5.

    The bytes go to a temporary file beside ``destination`` and are renamed
    into place only when complete and verified, so an interrupted transfer
    never leaves a partial file under the real name.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        log.info(f"downloading {url} -> {destination}")
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=destination.name + ".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                shutil.copyfileobj(response, out, 1 << 20)
                size = out.tell()
            if expected is not None and size != int(expected):
                raise OSError(f"transfer interrupted after {size} of {expected} bytes")
            actual = md5_of(tmp)
            if actual != md5:
                raise OSError(f"checksum mismatch: MD5 {actual}, expected {md5}")
            os.replace(tmp, destination)
            return destination
        except (OSError, urllib.error.URLError, ValueError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            log.info(f"  failed: {failures[-1]}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(f"could not download {destination.name} (" + "; ".join(failures) + ")")


def _complete(directory):
    return all((Path(directory) / f).is_file() for f in IDX_FILES.values())


def locate_idx_dir(name, data_dir=None, cache_dir=None, source=None):
    """The directory holding the four IDX files of ``name``, downloading if needed.

    Looks in ``data_dir`` (only there, when given), then the source's system
    dirs, then ``cache_dir/name``; downloads what is missing into the latter
    from the source's mirrors. ``source`` defaults to ``IDX_SOURCES[name]``.
    """
    source = source or IDX_SOURCES[name]
    if data_dir:
        data_dir = Path(data_dir).expanduser()
        if not _complete(data_dir):
            missing = [f for f in IDX_FILES.values() if not (data_dir / f).is_file()]
            raise DataError(f"dataset.dir={data_dir} lacks {', '.join(missing)}")
        return data_dir
    for directory in source.system_dirs:
        if _complete(directory):
            return Path(directory)
    target = Path(cache_dir or default_cache_dir()) / name
    for key, filename in IDX_FILES.items():
        if not (target / filename).is_file():
            urls = [base.rstrip("/") + "/" + filename for base in source.mirrors]
            try:
                download(urls, target / filename, source.md5[key])
            except DataError as exc:
                raise DataError(f"{name}: {exc}. Offline? Put the four files ({', '.join(IDX_FILES.values())}) "
                                f"in {target} or pass dataset.dir=DIR") from None
    return target


def load_idx_arrays(directory):
    """(X_train, y_train, X_test, y_test) from an IDX directory; X scaled to [0, 1] float32."""
    directory = Path(directory)
    arrays = {}
    for key, filename in IDX_FILES.items():
        arrays[key] = read_idx(directory / filename, IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC)
    for part in ("train", "test"):
        n_images, n_labels = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if n_images != n_labels:
            raise DataError(f"{directory}: {n_images} {part} images but {n_labels} labels")
    scale = np.float32(1 / 255)

    def flat(images):
        return images.reshape(len(images), -1).astype(np.float32) * scale

    return (flat(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
            flat(arrays["test_images"]), arrays["test_labels"].astype(np.int64))


# ---- the dataset registry ----

def _idx_dataset(name):
    def load(cfg, seed, cache_dir):
        directory = locate_idx_dir(name, cfg.get("dir"), cache_dir)
        return ("multiclass", 10, *load_idx_arrays(directory), str(directory))
    return load


def _split_test(X, y, test_fraction, seed, stratify):
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y if stratify else None)
    return X_train, y_train, X_test, y_test


def _sklearn_dataset(loader_name, task):
    def load(cfg, seed, cache_dir):
        import sklearn.datasets

        loader = getattr(sklearn.datasets, loader_name)
        try:
            if loader_name.startswith("fetch_"):
                X, y = loader(return_X_y=True, data_home=cfg.get("dir") or Path(cache_dir or default_cache_dir()) / "sklearn")
            else:
                X, y = loader(return_X_y=True)
        except (OSError, urllib.error.URLError) as exc:
            raise DataError(f"{loader_name} could not get its data ({exc}); it needs the internet once, "
                            f"or scikit-learn's cached copy in dataset.dir") from None
        classes = int(y.max()) + 1 if task == "multiclass" else None
        return (task, classes, *_split_test(X, y, cfg.get("test_fraction", 0.2), seed, task == "multiclass"),
                f"scikit-learn {loader_name}")
    return load


def _xor(cfg, seed, cache_dir):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    # Four points are the whole problem: the test set is the training set.
    return "multiclass", 2, X, y, X.copy(), y.copy(), "the four XOR points"


DATASETS = {
    "mnist": _idx_dataset("mnist"),
    "fashion_mnist": _idx_dataset("fashion_mnist"),
    "digits": _sklearn_dataset("load_digits", "multiclass"),
    "iris": _sklearn_dataset("load_iris", "multiclass"),
    "xor": _xor,
    "diabetes": _sklearn_dataset("load_diabetes", "regression"),
    "california_housing": _sklearn_dataset("fetch_california_housing", "regression"),
}


def load_dataset(cfg, val_fraction, seed, cache_dir=None):
    """Load the dataset named ``cfg["name"]`` and hold out a validation split.

    Parameters
    ----------
    cfg : mapping
        The ``dataset`` config: name, dir, test_fraction, standardize, target_transform.
    val_fraction : float in [0, 1)
        Share of the training set held out for validation (stratified, seeded).
    seed : int
    """
    name = cfg["name"]
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    task, n_classes, X, y, X_test, y_test, source = DATASETS[name](cfg, seed, cache_dir)
    X, X_test = np.asarray(X, np.float32), np.asarray(X_test, np.float32)
    n_val = int(round(len(X) * val_fraction))
    if n_val:
        X, y, X_val, y_val = _split_test(X, y, n_val, seed, task == "multiclass")
    else:
        X_val, y_val = X[:0], y[:0]
    if cfg.get("standardize"):
        mean, std = X.mean(axis=0), X.std(axis=0)
        std[std == 0] = 1
        X, X_val, X_test = ((part - mean) / std for part in (X, X_val, X_test))
    if task == "regression":
        y, y_val, y_test = _transform_targets(cfg.get("target_transform", "none"), y, y_val, y_test)
    return Dataset(name, task, n_classes, X, y, X_val, y_val, X_test, y_test, source)


def _transform_targets(transform, y, y_val, y_test):
    parts = [np.asarray(part, np.float64) for part in (y, y_val, y_test)]
    if transform == "log":
        parts = [np.log(part) for part in parts]
    elif transform == "standardize":
        mean, std = parts[0].mean(), parts[0].std()
        parts = [(part - mean) / std for part in parts]
    return [part.astype(np.float32) for part in parts]
