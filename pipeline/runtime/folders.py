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


def what_to_fix(directory: str | Path, otherwise: str) -> str:
    """What to tell a user whose ``directory`` cannot be made: ``FNN_SWEEP_HOME`` when it is under that
    variable's directory (the outputs' default place, set perhaps long ago, no setting typed), else
    ``otherwise``."""
    home = os.environ.get("FNN_SWEEP_HOME", "").rstrip("/")
    path = str(directory)
    if home and (path == home or path.startswith(home + "/")):
        return f"FNN_SWEEP_HOME={home} is where the outputs go: it must be a directory this user can write in"
    return otherwise
