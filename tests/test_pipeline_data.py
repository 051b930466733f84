"""Data loading: IDX validation, local lookup, downloads against a server on 127.0.0.1."""

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import (
    IDX_FILES,
    DataError,
    IdxSource,
    download,
    load_dataset,
    load_idx_arrays,
    locate_idx_dir,
    read_idx,
)


def idx_bytes(magic, shape, fill=7):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape)
    return gzip.compress(header + bytes([fill]) * int(np.prod(shape)))


TINY = {  # four valid IDX files: 3 training and 2 test images
    IDX_FILES["train_images"]: idx_bytes(2051, (3, 28, 28)),
    IDX_FILES["train_labels"]: idx_bytes(2049, (3,), fill=1),
    IDX_FILES["test_images"]: idx_bytes(2051, (2, 28, 28)),
    IDX_FILES["test_labels"]: idx_bytes(2049, (2,), fill=2),
}
TINY_MD5 = {key: hashlib.md5(TINY[name]).hexdigest() for key, name in IDX_FILES.items()}


class FileServer:
    """Serves {path: bytes} on 127.0.0.1; paths under /cut/ stop after half the bytes."""

    def __init__(self, files):
        self.files, self.requests = files, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path.startswith("/cut/") else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # Polled every 20 ms, not 0.5 s: shutdown() waits for the next poll.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    srv = FileServer(dict(TINY))
    yield srv
    srv.stop()


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def test_download_verifies_and_renames_into_place(server, tmp_path):
    name = IDX_FILES["train_labels"]
    path = download([f"{server.url}/m/{name}"], tmp_path / name, TINY_MD5["train_labels"])
    assert path.read_bytes() == TINY[name] and _leftovers(tmp_path) == []


def test_bad_checksum_leaves_nothing(server, tmp_path):
    name = IDX_FILES["train_labels"]
    with pytest.raises(DataError, match="checksum mismatch"):
        download([f"{server.url}/m/{name}"], tmp_path / name, "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_leaves_no_partial_file(server, tmp_path):
    name = IDX_FILES["train_images"]
    with pytest.raises(DataError, match="interrupted|IncompleteRead|Connection"):
        download([f"{server.url}/cut/{name}"], tmp_path / name, TINY_MD5["train_images"])
    assert list(tmp_path.iterdir()) == []


def test_next_mirror_is_tried(server, tmp_path):
    name = IDX_FILES["test_labels"]
    # interrupted (tried twice), then 404 (not retried: the server answered), then good
    urls = [f"{server.url}/cut/{name}", f"{server.url}/gone/{name}.missing", f"{server.url}/good/{name}"]
    download(urls, tmp_path / name, TINY_MD5["test_labels"])
    assert (tmp_path / name).read_bytes() == TINY[name] and _leftovers(tmp_path) == []
    assert [path.split("/")[1] for path in server.requests] == ["cut", "cut", "gone", "good"]


def test_locate_downloads_into_the_cache_once(server, tmp_path):
    source = IdxSource(mirrors=(f"{server.url}/a/",), md5=TINY_MD5)
    directory = locate_idx_dir("mnist", cache_dir=tmp_path, source=source)
    assert directory == tmp_path / "mnist"
    X, y, X_test, y_test = load_idx_arrays(directory)
    assert X.shape == (3, 784) and X.dtype == np.float32 and np.allclose(X, 7 / 255)
    assert y.tolist() == [1, 1, 1] and X_test.shape == (2, 784)
    requests = len(server.requests)
    locate_idx_dir("mnist", cache_dir=tmp_path, source=source)
    assert len(server.requests) == requests  # cached: nothing fetched again


def test_offline_error_says_where_to_put_the_files(tmp_path):
    source = IdxSource(mirrors=("http://127.0.0.1:9/",), md5=TINY_MD5)  # port 9: nothing listens
    with pytest.raises(DataError) as err:
        locate_idx_dir("mnist", cache_dir=tmp_path, source=source)
    assert str(tmp_path / "mnist") in str(err.value) and "dataset.dir" in str(err.value)


def test_dataset_dir_must_hold_the_files(tmp_path):
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte.gz"):
        locate_idx_dir("mnist", data_dir=tmp_path)


@pytest.mark.parametrize(
    "content, message",
    [
        (idx_bytes(2049, (3,)), "magic number 2049, expected 2051"),
        (idx_bytes(2051, (3, 28, 28))[:-40], "corrupt or truncated"),
        (b"not gzip at all", "corrupt or truncated"),
        (idx_bytes(2051, (3, 10, 10)), "expected 28 x 28"),
    ],
)
def test_corrupt_files_are_named(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path, 2051)
    assert str(path) in str(err.value)


def test_image_label_count_mismatch(tmp_path):
    for name, body in TINY.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / IDX_FILES["train_labels"]).write_bytes(idx_bytes(2049, (4,)))
    with pytest.raises(DataError, match="3 train images but 4 labels"):
        load_idx_arrays(tmp_path)


def test_real_digits_split_three_ways(mnist_dir):
    data = load_dataset({"name": "mnist", "dir": str(mnist_dir)}, val_fraction=0.1, seed=0)
    assert data.X_train.shape[1] == 784 and data.X_train.dtype == np.float32
    assert len(data.X_val) == round(0.1 * (len(data.X_train) + len(data.X_val)))
    assert 0 <= data.X_train.min() and data.X_train.max() <= 1
    assert set(np.unique(data.y_val)) == set(range(10))  # stratified
    again = load_dataset({"name": "mnist", "dir": str(mnist_dir)}, val_fraction=0.1, seed=0)
    assert data.content_hash() == again.content_hash()
    other = load_dataset({"name": "mnist", "dir": str(mnist_dir)}, val_fraction=0.1, seed=1)
    assert other.content_hash() != data.content_hash()
    assert np.array_equal(other.X_test, data.X_test)  # the test set never changes


def test_validation_split_is_cached_beside_the_decoded_arrays(mnist_dir, mnist_arrays, tmp_path):
    from pipeline.data.registry import split_test

    X, y, _, _ = mnist_arrays
    expected = split_test(X, y, round(0.1 * len(X)), 0, True)
    cfg = {"name": "mnist", "dir": str(mnist_dir)}
    first = load_dataset(cfg, val_fraction=0.1, seed=0, cache_dir=tmp_path)
    [split_dir] = tmp_path.glob(f"decoded/*/split-{len(expected[2])}-0-stratified")
    again = load_dataset(cfg, val_fraction=0.1, seed=0, cache_dir=tmp_path)
    for data in (first, again):  # the same rows as splitting afresh, mapped from the cached files
        for array, want in zip((data.X_train, data.y_train, data.X_val, data.y_val), expected):
            assert np.array_equal(array, want)
        assert isinstance(data.X_train.base, np.memmap) and Path(data.X_train.base.filename).parent == split_dir
    other = load_dataset(cfg, val_fraction=0.1, seed=1, cache_dir=tmp_path)
    assert not np.array_equal(other.y_val, first.y_val)  # each seed has its own split
    assert len(list(tmp_path.glob("decoded/*/split-*"))) == 2


def test_scikit_learns_datasets_are_split_once_then_loaded_without_scikit_learn(tmp_path):
    """A bundled dataset's test and validation splits go to the decoded-data cache: a later process
    (a sweep's worker) maps the same arrays and never imports scikit-learn; another seed has its own."""
    import json
    import subprocess
    import sys

    from helpers import REPO

    script = (
        "import json, sys; from pipeline.data import load_dataset; "
        "d = load_dataset({'name': 'digits', 'standardize': True}, 0.1, int(sys.argv[1]), cache_dir=sys.argv[2]); "
        "print(json.dumps([d.content_hash(), 'sklearn' in sys.modules, d.X_test[:3].tolist(), d.y_val[:5].tolist()]))"
    )

    def load(seed):
        done = subprocess.run(
            [sys.executable, "-c", script, str(seed), str(tmp_path)], cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    built, mapped, other = load(0), load(0), load(1)
    assert built[1] and not mapped[1]  # scikit-learn only to build them
    assert built[0] == mapped[0] and built[2:] == mapped[2:]
    fresh = load_dataset({"name": "digits", "standardize": True}, val_fraction=0.1, seed=0)  # no cache dir given
    assert fresh.content_hash() == built[0]
    assert other[0] != built[0] and len(list(tmp_path.glob("decoded/scikit-learn-*-load_digits-*"))) == 2


def test_a_cached_splits_content_hash_is_kept_beside_it_and_dropped_when_it_is_rebuilt(mnist_dir, tmp_path):
    """The first hash of a cached split is written beside it; later loads read it (a worker hashing
    200 MB otherwise), standardized data has its own; a rebuilt split loses the old one."""
    import hashlib

    cfg = {"name": "mnist", "dir": str(mnist_dir)}
    first = load_dataset(cfg, val_fraction=0.1, seed=0, cache_dir=tmp_path)
    [split] = tmp_path.glob("decoded/*/split-*-0-stratified")
    assert not list(split.glob("content_hash*"))
    digest = hashlib.sha256()
    for array in (first.X_train, first.y_train, first.X_val, first.y_val, first.X_test, first.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    assert first.content_hash() == digest.hexdigest()[:16] == (split / "content_hash").read_text()
    (split / "content_hash").write_text("0123456789abcdef")  # what a later load reads, not hashes
    assert load_dataset(cfg, val_fraction=0.1, seed=0, cache_dir=tmp_path).content_hash() == "0123456789abcdef"
    standardized = load_dataset({**cfg, "standardize": True}, val_fraction=0.1, seed=0, cache_dir=tmp_path)
    assert standardized.content_hash() == (split / "content_hash-standardized").read_text() != first.content_hash()
    (split / "y_val.npy").write_bytes(b"damaged")
    rebuilt = load_dataset(cfg, val_fraction=0.1, seed=0, cache_dir=tmp_path)
    assert not (split / "content_hash-standardized").exists()
    assert rebuilt.content_hash() == first.content_hash() == (split / "content_hash").read_text()


@pytest.mark.parametrize(
    "name, task", [("digits", "multiclass"), ("iris", "multiclass"), ("xor", "multiclass"), ("diabetes", "regression")]
)
def test_bundled_datasets_load_offline(name, task):
    data = load_dataset(
        {"name": name, "standardize": name != "xor", "target_transform": "standardize"},
        val_fraction=0.0 if name == "xor" else 0.1,
        seed=0,
    )
    assert data.task == task and data.X_train.dtype == np.float32 and len(data.X_test)


def _tiny_dir(directory, **replace):
    for name, body in {**TINY, **{IDX_FILES[key]: body for key, body in replace.items()}}.items():
        (directory / name).write_bytes(body)
    return directory


@pytest.mark.parametrize(
    "replace, message",
    [
        ({"train_labels": idx_bytes(2049, (3,), fill=10)}, r"3 train label\(s\) outside 0..9 \(e.g. 10\)"),
        ({"test_labels": idx_bytes(2049, (2,), fill=255)}, r"2 test label\(s\) outside 0..9"),
        ({"train_images": idx_bytes(2051, (0, 28, 28)), "train_labels": idx_bytes(2049, (0,))}, "holds no images"),
    ],
)
def test_idx_files_with_valid_headers_but_unusable_contents_are_data_errors(tmp_path, replace, message):
    directory = _tiny_dir(tmp_path, **replace)
    with pytest.raises(DataError, match=message):
        load_dataset({"name": "mnist", "dir": str(directory)}, val_fraction=0.0, seed=0, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "cfg, val_fraction, message",
    [
        (
            {"name": "digits"},
            0.995,
            "train.val_fraction=0.995 is not valid for digits: the training part of its 1437 "
            "samples would hold 7, fewer than its 10 classes; choose a smaller",
        ),
        (
            {"name": "digits"},
            0.001,
            "train.val_fraction=0.001 is not valid for digits: the held-out part of its 1437 "
            "samples would hold 1, fewer than its 10 classes; choose a larger",
        ),
        ({"name": "iris", "test_fraction": 0.01}, 0.1, "dataset.test_fraction=0.01 is not valid for iris"),
        ({"name": "diabetes", "test_fraction": 0.999}, 0.1, "dataset.test_fraction=0.999 is not valid for diabetes"),
    ],
)
def test_splits_too_small_for_their_classes_are_named_by_their_key(cfg, val_fraction, message):
    with pytest.raises(DataError, match=message):
        load_dataset(cfg, val_fraction=val_fraction, seed=0)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "shape"])
def test_a_damaged_decoded_cache_entry_is_rebuilt_with_one_line(mnist_dir, tmp_path, caplog, damage):
    cfg = {"name": "mnist", "dir": str(mnist_dir)}
    first = load_dataset(cfg, val_fraction=0.0, seed=0, cache_dir=tmp_path)
    expected = np.array(first.X_train), np.array(first.y_test)  # copies: the mapped files are damaged below
    del first
    [entry] = tmp_path.glob("decoded/*")
    target = entry / ("X_train.npy" if damage != "shape" else "y_test.npy")
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "garbage":
        target.write_bytes(b"\x93NUMPY garbage")
    else:  # a whole, readable file of the wrong length
        np.save(target, np.zeros(3, np.int64))
    again = load_dataset(cfg, val_fraction=0.0, seed=0, cache_dir=tmp_path)
    [line] = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert line.startswith(f"the decoded-data cache {entry} is damaged (") and line.endswith("); rebuilding it")
    assert np.array_equal(again.X_train, expected[0]) and np.array_equal(again.y_test, expected[1])
    caplog.clear()
    load_dataset(cfg, val_fraction=0.0, seed=0, cache_dir=tmp_path)  # mended: mapped, not rebuilt, from now on
    assert not any("damaged" in r.getMessage() for r in caplog.records)
