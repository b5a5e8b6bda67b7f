"""Work directories live on a local disk: an object-storage URL is refused in one line.

The measurement store is SQLite, which needs a local file system (locking, atomic renames);
checkpoints and reports sit beside it. A `gs://` work directory would otherwise become a local
directory named `gs:` without a word, so it is refused, saying what to do instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")  # gs://b/x, s3://..., and Path's gs:/b/x


def local_workdir(value: str | os.PathLike) -> Path:
    """``value`` as a local Path; ValueError for an object-storage URL such as gs://bucket/dir."""
    text = os.fspath(value)
    if _URL.match(text):
        raise ValueError(
            f"--workdir {text!r} is object storage; the work directory must be on a local disk "
            "(its SQLite store needs one): use a local --workdir and copy it when done, e.g. "
            "`gcloud storage rsync -r WORKDIR gs://BUCKET/DIR`")
    return Path(text)
