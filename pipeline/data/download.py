"""Where IDX datasets come from: a given directory, system packages, the cache, or mirrors."""

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.errors import DataError
from pipeline.data.idx import IDX_FILES

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
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        md5={
            "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
            "test_images": "9fb629c4189551a2d022fa330f9573f3",
            "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": IdxSource(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
            "test_images": "bef4ecab320f06d8554ea6380940ec79",
            "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # Debian's dataset-fashion-mnist package: the full set, offline.
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


def default_cache_dir() -> Path:
    """$FNN_SWEEP_DATA_DIR, else $XDG_CACHE_HOME/fnn-sweep, else ~/.cache/fnn-sweep."""
    if os.environ.get("FNN_SWEEP_DATA_DIR"):
        return Path(os.environ["FNN_SWEEP_DATA_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fnn-sweep"


def download(
    urls: Sequence[str], destination: str | os.PathLike, md5: str, timeout: float = 30, tries: int = 2
) -> Path:
    """Fetch one file from the first URL that serves it with the right MD5, with pooch.

    pooch writes the bytes to a temporary file beside ``destination`` and moves it into place
    only when complete and verified, so an interrupted transfer never leaves a partial file
    under the real name; it shows a progress bar in a terminal. Each URL is tried ``tries``
    times before the next.
    """
    import pooch
    import requests

    pooch.get_logger().setLevel(logging.WARNING)  # our own line says what is downloaded
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=timeout)
    failures = []
    for url in urls:
        log.info(f"downloading {url} -> {destination}")
        for attempt in range(tries):
            try:
                pooch.retrieve(
                    url, known_hash=f"md5:{md5}", fname=destination.name, path=destination.parent, downloader=downloader
                )
                return destination
            except ValueError as exc:  # pooch: the hash does not match; the file was not kept
                failures.append(f"{url}: checksum mismatch ({str(exc).splitlines()[0][:200]})")
                break
            except (OSError, requests.RequestException) as exc:
                reason = str(getattr(exc, "reason", None) or exc).splitlines()[0][:200]
                final = isinstance(exc, requests.HTTPError)  # the server answered: not there
                if final or attempt + 1 == tries:
                    failures.append(f"{url}: {reason}")
                log.info(f"  failed: {url}: {reason}")
                if final:
                    break
    raise DataError(f"could not download {destination.name} (" + "; ".join(failures) + ")")


def _complete(directory):
    return all((Path(directory) / f).is_file() for f in IDX_FILES.values())


def locate_idx_dir(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    source: IdxSource | None = None,
) -> Path:
    """The directory holding the four IDX files of ``name``, downloading if needed.

    Looks in ``data_dir`` (only there, when given), then the source's system
    dirs, then ``cache_dir/name``; downloads what is missing into the latter
    from the source's mirrors. ``source`` defaults to ``IDX_SOURCES[name]``.
    """
    idx_source = IDX_SOURCES[name] if source is None else source
    if data_dir:
        data_dir = Path(data_dir).expanduser()
        if not _complete(data_dir):
            missing = [f for f in IDX_FILES.values() if not (data_dir / f).is_file()]
            raise DataError(f"dataset.dir={data_dir} lacks {', '.join(missing)}")
        return data_dir
    for directory in idx_source.system_dirs:
        if _complete(directory):
            return Path(directory)
    target = Path(cache_dir or default_cache_dir()) / name
    for key, filename in IDX_FILES.items():
        if not (target / filename).is_file():
            urls = [base.rstrip("/") + "/" + filename for base in idx_source.mirrors]
            try:
                download(urls, target / filename, idx_source.md5[key])
            except DataError as exc:
                raise DataError(
                    f"{name}: {exc}. Offline? Put the four files ({', '.join(IDX_FILES.values())}) "
                    f"in {target} or pass dataset.dir=DIR"
                ) from None
    return target
