"""A report is written whole or not at all, each in its own folder under ``report.out_dir``.

The files are built in a hidden temporary folder beside their place and
renamed into it only when all are written, so a failure at any point leaves
the previous report as it was. ``out_dir/<name>/`` (a sweep's id, or
``all``) holds one report; ``out_dir/latest`` points at the newest. Nothing
else in ``out_dir`` is touched: it may hold committed studies.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.report.select import ReportError
from pipeline.runtime.folders import unmakeable, what_to_fix
from pipeline.tracking.reaper import process_alive

log = logging.getLogger("pipeline")
LATEST = "latest"


def check_out_dir(out_dir: str | Path) -> Path:
    """``report.out_dir`` is a directory this process can write, or can create; else ``ReportError``."""
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ReportError(f"report.out_dir={out_dir} is a file, not a directory; choose a directory")
    problem = unmakeable(path)
    if problem is not None:
        fix = what_to_fix(path.absolute(), "choose another directory")
        raise ReportError(f"report.out_dir={out_dir} cannot be written: {problem}; {fix}")
    return path


@contextmanager
def report_folder(out_dir: str | Path, name: str) -> Iterator[Path]:
    """Yield an empty folder to write the report ``name`` into; publish it as ``out_dir/name`` when the
    block completes, and drop it if the block fails."""
    out = check_out_dir(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(out)
        building = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.building-{os.getpid()}-"))
    except OSError as exc:
        raise ReportError(
            f"report.out_dir={out_dir} cannot be written: {exc.strerror or exc}; choose another directory"
        ) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(building, 0o777 & ~umask)  # as a plain mkdir would make it
    try:
        yield building
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _publish(building, out / name)
    _point_latest(out, name)


def _remove_abandoned(out: Path) -> None:
    """Hidden folders of reports whose process was killed before it finished (SIGKILL, a power loss)."""
    for folder in out.glob(".*.building-*"):
        pid = folder.name.rsplit(".building-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not process_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _publish(building: Path, target: Path) -> None:
    """Rename ``building`` to ``target``, replacing an earlier report of the same name."""
    previous = None
    if target.exists():
        previous = target.with_name(f".{target.name}.previous-{os.getpid()}")
        os.rename(target, previous)
    os.rename(building, target)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _point_latest(out: Path, name: str) -> None:
    latest = out / LATEST
    if latest.exists() and not latest.is_symlink():
        log.warning(f"{latest} is not a link made by fnn-sweep: left as it is")
        return
    link = out / f".{LATEST}-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(name, link)
    os.replace(link, latest)
