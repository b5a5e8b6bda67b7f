"""The layout of a work directory, in one place: every command and the search find their files
through `Workdir`.

    WORKDIR/mnas.sqlite                              measurement store (latency.store)
    WORKDIR/cache/tflite/                            conversion cache (latency.export)
    WORKDIR/tables/<space>-<setting>-<device>.json   lookup tables (latency.lut)
    WORKDIR/predictors/<space>-<setting>-<device>/   device predictors ('mnas predictor fit')
    WORKDIR/predictors/<run id>/                     a search's predictor (refitted by calibration)
    WORKDIR/reports/validate-<device>-<setting>/     'mnas predictor validate' reports
    WORKDIR/report/                                  a search's report and found models
    WORKDIR/search_checkpoint.json                   a search's checkpoint
    WORKDIR/samples.jsonl                            a tabular search's samples
    WORKDIR/checkpoints/<run>/                       'mnas train' checkpoints

Work directories live on a local disk: the store is SQLite, which needs a local file system
(locking, atomic renames), so an object-storage URL is refused in one line saying what to do
(a `gs://` work directory would otherwise become a local directory named `gs:` without a word).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")  # gs://b/x, s3://..., and Path's gs:/b/x
STORE_FILE = "mnas.sqlite"
CHECKPOINT_FILE = "search_checkpoint.json"
SAMPLES_FILE = "samples.jsonl"


@dataclasses.dataclass(frozen=True)
class Workdir:
    """A work directory: where its store, tables, predictors, reports and checkpoints live."""

    root: Path

    @classmethod
    def of(cls, value: str | os.PathLike | Workdir) -> Workdir:
        """``value`` as a Workdir (a local path); ValueError for an object-storage URL."""
        if isinstance(value, Workdir):
            return value
        text = os.fspath(value)
        if _URL.match(text):
            raise ValueError(
                f"--workdir {text!r} is object storage; the work directory must be on a local "
                "disk (its SQLite store needs one): use a local --workdir and copy it when done, "
                "e.g. `gcloud storage rsync -r WORKDIR gs://BUCKET/DIR`")
        return cls(Path(text))

    @classmethod
    def holding_predictor(cls, directory: str | Path) -> Workdir:
        """The work directory a predictor directory (WORKDIR/predictors/NAME) lives in."""
        return cls(Path(directory).resolve().parent.parent)

    # -- measurements -----------------------------------------------------------------------
    @property
    def store(self) -> Path:
        """The SQLite measurement store."""
        return self.root / STORE_FILE

    @property
    def tflite_cache(self) -> Path:
        """The conversion cache of .tflite models."""
        return self.root / "cache" / "tflite"

    @property
    def tables(self) -> Path:
        """The folder of lookup tables."""
        return self.root / "tables"

    def table(self, space: str, setting: str, device_id: str) -> Path:
        """The lookup table of a space setting (or slice) on a device."""
        return self.tables / f"{space}-{setting}-{device_id}.json"

    def device_tables(self, device_id: str) -> list[Path]:
        """Every lookup table of a device, sorted by name."""
        return sorted(self.tables.glob(f"*-{device_id}.json"))

    # -- predictors and reports -------------------------------------------------------------
    @property
    def predictors(self) -> Path:
        """The folder of predictor directories."""
        return self.root / "predictors"

    def device_predictor(self, space: str, setting: str, device_id: str) -> Path:
        """The predictor 'mnas predictor fit' fits for a space setting (or slice) on a device."""
        return self.predictors / f"{space}-{setting}-{device_id}"

    def external_predictor(self, device: str, space: str) -> Path:
        """The predictor 'mnas predictor fit --data' fits on a device's external measurements."""
        return self.predictors / f"{device}-{space}"

    def run_predictor(self, run_id: str) -> Path:
        """A search's own predictor (its calibration rounds refit it)."""
        return self.predictors / run_id

    def validate_report(self, device_id: str, setting: str) -> Path:
        """The report folder of 'mnas predictor validate' on a device and setting."""
        return self.root / "reports" / f"validate-{device_id}-{setting}"

    # -- searches and training --------------------------------------------------------------
    @property
    def search_report(self) -> Path:
        """The report folder of the search (summary, plots, found models)."""
        return self.root / "report"

    @property
    def search_checkpoint(self) -> Path:
        """The search's checkpoint (controller state and step)."""
        return self.root / CHECKPOINT_FILE

    @property
    def samples(self) -> Path:
        """The samples of a tabular search, one JSON line each."""
        return self.root / SAMPLES_FILE

    def train_checkpoints(self, run: str) -> Path:
        """The checkpoint folder of an 'mnas train' run."""
        return self.root / "checkpoints" / run
