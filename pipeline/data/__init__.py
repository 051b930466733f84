"""Datasets: find or download the files (download), read them (idx), the registry, the splits."""

from pipeline.data.dataset import Dataset, load_dataset
from pipeline.data.download import IDX_SOURCES, IdxSource, default_cache_dir, download, locate_idx_dir
from pipeline.data.errors import DataError
from pipeline.data.idx import IDX_FILES, load_idx_arrays, read_idx
from pipeline.data.registry import DATASETS

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "IDX_SOURCES",
    "DataError",
    "Dataset",
    "IdxSource",
    "default_cache_dir",
    "download",
    "load_dataset",
    "load_idx_arrays",
    "locate_idx_dir",
    "read_idx",
]
