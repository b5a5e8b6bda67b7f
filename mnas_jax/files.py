"""Writing files and directories so that a reader or a kill never sees half of one.

A leaf module (imports nothing else of the project): every package writes through it.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory, fsync it and
    rename it over ``path``: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; reports and models are not secrets
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure_atomic(figure: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render a matplotlib ``Figure`` as PNG in memory and write it with ``write_atomic``."""
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    return write_atomic(path, buf.getvalue())


def replace_dir_atomic(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Build a directory with ``fill(tmp_dir)`` and publish it at ``path`` in one rename.

    ``path`` becomes a symbolic link to a versioned sibling directory (``.NAME.v<id>``); the
    link is replaced with ``rename(2)``, which is atomic, so at every instant ``path`` resolves
    to a complete directory: the old one or the new one. A plain directory left at ``path`` by
    an older version is moved aside into a versioned sibling first (that step is atomic too:
    one rename; readers may find ``path`` missing only between it and the link's creation,
    once, on the first save after an upgrade). Old versions, and leftovers of a save that was
    killed, are removed after the switch.
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    version = parent / f".{path.name}.v{uuid.uuid4().hex[:12]}"
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.rename(tmp, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.is_dir() and not path.is_symlink():
        os.rename(path, parent / f".{path.name}.v{uuid.uuid4().hex[:12]}")
    link_tmp = parent / f".{path.name}.link.{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, link_tmp)
    os.replace(link_tmp, path)
    _fsync_dir(parent)
    for stale in parent.glob(f".{path.name}.*"):
        if stale.name != version.name and not stale.name.startswith(f".{path.name}.link."):
            shutil.rmtree(stale, ignore_errors=True)
    return path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
