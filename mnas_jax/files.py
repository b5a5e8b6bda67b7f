"""Writing files and directories so that a reader or a kill never sees half of one.

A leaf module (imports nothing else of the project): every package writes through it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import time
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


KEEP_SECONDS = 60.0  # a replaced version stays readable this long after its successor appeared
_VERSION = re.compile(r"\.v(\d{20})-[0-9a-f]{6}")
# a killed save's temporary directory or link, or a version of the older layout (.NAME.v<hex>)
_LEFTOVER = re.compile(r"\.(?:[a-z0-9_]{8}\.tmp|link\.[0-9a-f]{8}|v[0-9a-f]{12})")


def replace_dir_atomic(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Build a directory with ``fill(tmp_dir)`` and publish it at ``path`` in one rename.

    ``path`` becomes a symbolic link to a versioned sibling directory (``.NAME.v<ns>-<id>``,
    named when it is complete, just before the switch); the link is replaced with ``rename(2)``,
    which is atomic, so at every instant ``path`` resolves to a complete directory: the old one
    or the new one. Everything the directory holds must be written by ``fill``.

    The rule for readers (see `current_version`): resolve the link once and read every file of
    that version. A version is removed only when it is not the link's target and a newer version
    has existed for more than `KEEP_SECONDS` (so a reader that resolved the link just before a
    switch keeps its whole version for that long); a reader slower than that finds a file
    missing and a changed link, and reads again (predictor.io does). Leftovers of a killed save
    (temporary directories and links) are removed once they are `KEEP_SECONDS` old, so a save
    running beside this one in another process is never disturbed. A plain directory left at
    ``path`` by an older version is moved aside into a versioned sibling first (one rename;
    readers may find ``path`` missing only between it and the link's creation, once, on the
    first save after an upgrade).
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        version = parent / _version_name(path.name)
        os.rename(tmp, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.is_dir() and not path.is_symlink():
        os.rename(path, parent / _version_name(path.name))
    link_tmp = parent / f".{path.name}.link.{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, link_tmp)
    os.replace(link_tmp, path)
    _fsync_dir(parent)
    prune_versions(path)
    return path


def _version_name(name: str) -> str:
    return f".{name}.v{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"


def current_version(path: str | os.PathLike) -> Path:
    """The directory ``path`` names now: the version its link points to (resolved once, so that
    every file read through it comes from one version), or ``path`` itself when it is a plain
    directory."""
    return Path(os.path.realpath(path))


def prune_versions(path: str | os.PathLike, keep_seconds: float | None = None) -> list[Path]:
    """Remove the versions of ``path`` no reader can hold any more and the leftovers of killed
    saves (the rule: `replace_dir_atomic`); returns what was removed."""
    path = Path(path)
    keep = KEEP_SECONDS if keep_seconds is None else keep_seconds
    now = time.time_ns()
    target = os.readlink(path) if path.is_symlink() else None
    versions, removed = [], []
    for entry in path.parent.glob(f".{path.name}.*"):
        suffix = entry.name[len(path.name) + 1:]  # another name's entries (.NAME.x.v...) match neither
        m = _VERSION.fullmatch(suffix)
        if m:
            versions.append((int(m.group(1)), entry))
        elif (_LEFTOVER.fullmatch(suffix) and entry.name != target
              and now - entry.lstat().st_mtime_ns > keep * 1e9):
            removed.append(entry)
    versions.sort()
    for (_, entry), (newer, _) in zip(versions, versions[1:]):
        if entry.name != target and now - newer > keep * 1e9:
            removed.append(entry)
    for entry in removed:
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry, ignore_errors=True)
    return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
