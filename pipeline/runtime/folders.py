"""Whether a directory can be made here, found by making it: ``os.access`` says yes to root for a
directory no one can create a folder in (``/proc``), and says nothing of a read-only mount's parents."""

import os
from pathlib import Path


def unmakeable(directory: str | Path) -> str | None:
    """Why ``directory`` cannot be made (or written), or None. It is made and, when it did not exist,
    removed again, up to the first directory that existed: nothing is left behind."""
    path = Path(directory).expanduser().absolute()
    if path.exists() and not path.is_dir():
        return "it is a file"
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".fnn-sweep-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        for made in missing:  # deepest first
            if made.is_dir():
                made.rmdir()
    return None
