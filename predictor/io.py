"""Saving and loading predictors: XGBoost's own JSON per booster plus `metadata.json`.

Never pickle: a predictor must keep loading after a library upgrade. The directory holds
`booster_<k>.json` (XGBoost `save_model` JSON), `training.npz` (training features and latencies,
plain arrays, read with allow_pickle=False, so `refit` works after loading) and `metadata.json`
(schema version, feature list, space, setting, device fingerprint, unit, training ids, library
versions, creation time, sha256 of every other file). A save replaces the directory atomically.

A predictor fitted with a device's lookup table needs that table again: `load_predictor` finds
it as `table.json` in the directory, at the path recorded when it was fitted, or in the `tables/`
folder of the work directory the predictor lives in, and checks its content hash. Transferred
predictors (`predictor.transfer`) are saved and loaded through the same two functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np
import xgboost as xgb

from latency.lut import LatencyTable
from latency.workdir import Workdir
from mnas_jax.files import current_version, replace_dir_atomic
from predictor.features import TableLike, make_featurizer
from predictor.kinds import Predictor
from predictor.model import Choice, LatencyPredictor, PredictorConfig, Prior, device_id_of

T = TypeVar("T")
SCHEMA_VERSION = 1
KIND = "mnas-latency-predictor"
TRANSFER_KIND = "mnas-transfer-predictor"  # predictor.transfer
METADATA = "metadata.json"
TRAINING = "training.npz"
TABLE_FILE = "table.json"
READ_TRIES = 3  # reads of a directory whose link a save switched while it was being read


class PredictorMismatchError(ValueError):
    """A predictor for another space, setting or device than the caller expects."""


class PredictorFileError(ValueError):
    """A predictor directory that is missing files, truncated, corrupted or of another schema."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "xgboost": xgb.__version__,
           "numpy": np.__version__}
    try:
        out["mnas-jax"] = importlib_metadata.version("mnas-jax")
    except importlib_metadata.PackageNotFoundError:
        pass
    return out


def _json_number(v: Any) -> Any:
    return None if isinstance(v, float) and not np.isfinite(v) else v


def metadata_of(pred: LatencyPredictor) -> dict[str, Any]:
    """The JSON metadata saved beside a predictor's XGBoost model."""
    return {
        "schema": SCHEMA_VERSION, "kind": KIND, "space": pred.space, "setting": pred.setting,
        "unit": pred.unit, "target": pred.choice.target,
        "choice": {k: _json_number(getattr(pred.choice, k)) for k in Choice.__dataclass_fields__},
        "prior": dataclasses.asdict(pred.prior), "config": pred.config.to_dict(),
        "seed": pred.seed,
        "features": pred.featurizer.feature_set.to_dict(),
        "device_fingerprint": pred.device_fingerprint, "device_id": pred.device_id,
        "table_info": pred.table_info, "train_ids": list(pred.train_ids),
        "n_train": len(pred.train_ids), "versions": _versions(), "created": pred.created,
    }


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_predictor(pred: Predictor, directory: str | Path, *,
                   table: LatencyTable | None = None,
                   extra: Callable[[Path], None] | None = None) -> Path:
    """Write the predictor to `directory`, replaced as a whole in one atomic step: at every
    instant a reader (or a process killed mid-save) finds the old predictor or the new one,
    never a missing or partial directory (see mnas_jax.files.replace_dir_atomic).

    Everything the directory holds is written inside the swap: the predictor, its lookup table
    as `table.json` (`table`; when not given, the table.json of the version replaced is carried
    over if it is still the predictor's table, so a refit keeps it) and whatever `extra(tmp)`
    writes (reports, plots)."""
    if table is None and pred.table_info and Path(directory).exists():
        table = _carried_table(Path(directory), pred.table_info)

    def fill(tmp: Path) -> None:
        pred.write(tmp)
        if table is not None:
            table.save(tmp / TABLE_FILE)
        if extra is not None:
            extra(tmp)

    return replace_dir_atomic(directory, fill)


def _carried_table(directory: Path, info: Mapping[str, Any]) -> LatencyTable | None:
    path = current_version(directory) / TABLE_FILE
    try:
        table = LatencyTable.load(path, allow_mismatch=True)
    except (OSError, ValueError):
        return None
    return table if table.to_dict()["sha256"] == info.get("sha256") else None


def write_predictor(pred: LatencyPredictor, directory: Path) -> None:
    """The files of a predictor, written into an existing (empty, private) directory."""
    files = {}
    for k, booster in enumerate(pred.boosters):
        name = f"booster_{k}.json"
        _write(directory / name, booster.save_raw(raw_format="json"))
        files[name] = _sha256(directory / name)
    with (directory / TRAINING).open("wb") as f:
        np.savez(f, train_x=pred.train_x, train_y=pred.train_y)
    files[TRAINING] = _sha256(directory / TRAINING)
    meta = metadata_of(pred) | {"files": files}
    _write(directory / METADATA, json.dumps(meta, indent=1, sort_keys=True).encode())


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """metadata.json of a predictor directory, checked for kind and schema version."""
    return _read_metadata(current_version(directory), Path(directory))


def _read_metadata(root: Path, directory: Path) -> dict[str, Any]:
    """metadata.json of the version `root` of `directory` (named in messages)."""
    path = root / METADATA
    if not root.is_dir():
        raise FileNotFoundError(f"predictor directory {str(directory)!r} does not exist; "
                                "fit one with 'mnas predictor fit'")
    if not path.is_file():
        raise PredictorFileError(f"{directory / METADATA} is missing: {str(directory)!r} is not a predictor "
                                 "directory (or a save was interrupted); fit it again")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise PredictorFileError(f"{path} is truncated or not JSON; fit the predictor "
                                 "again") from None
    if not isinstance(meta, dict) or meta.get("kind") not in (KIND, TRANSFER_KIND):
        raise PredictorFileError(f"{path} is not a latency predictor's metadata")
    if meta.get("schema") != SCHEMA_VERSION:
        raise PredictorFileError(f"{path} has schema {meta.get('schema')!r}; this version "
                                 f"reads schema {SCHEMA_VERSION}: refit the predictor")
    return meta


def _check_files(directory: Path, files: Mapping[str, str]) -> None:
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise PredictorFileError(f"predictor file {path} is missing; restore it or refit")
        if _sha256(path) != digest:
            raise PredictorFileError(f"predictor file {path} is truncated or corrupted (its "
                                     "sha256 differs from metadata.json); restore it or refit")


def _check_expected(meta: Mapping[str, Any], directory: Path, space: str | None,
                    setting: str | None, device_id: str | None) -> None:
    for field, want in (("space", space), ("setting", setting), ("device_id", device_id)):
        have = meta.get(field)
        if want is not None and have != want:
            device = meta.get("device_fingerprint") if field == "device_id" else None
            extra = f" (fingerprint {device})" if device else ""
            raise PredictorMismatchError(
                f"predictor {str(directory)!r} is for {field} {have!r}{extra}, but "
                f"{want!r} was expected; use a predictor fitted for {want!r} "
                "('mnas predictor fit')")


def _choice(d: Mapping[str, Any]) -> Choice:
    d = dict(d)
    for k in ("cv_rmse", "cv_score"):
        d[k] = float("nan") if d.get(k) is None else float(d[k])
    return Choice(**d)


@dataclasses.dataclass(frozen=True)
class PredictorDir:
    """One version of a predictor directory read whole: the predictor, the lookup table it
    reads (a transferred one: its base's; None without one or when the caller gave the
    entries), its metadata, the version directory every file came from, and what the predictor
    knows of its own device: that device's table (None for a transferred predictor, whose table
    is the base device's) and its reference model's median in ms (None when unknown)."""

    predictor: Predictor
    table: LatencyTable | None
    metadata: dict[str, Any]
    version: Path
    device_table: LatencyTable | None = None
    reference_ms: float | None = None


def load_predictor(directory: str | Path, *, space: str | None = None,
                   setting: str | None = None, device_id: str | None = None,
                   device_fingerprint: Mapping[str, Any] | None = None,
                   table: TableLike | None = None,
                   allow_mismatch: bool = False) -> Predictor:
    """Load and check a predictor (a transferred one too). Expected space/setting/device (None:
    not checked) that differ raise `PredictorMismatchError` unless `allow_mismatch`; a predictor
    fitted with a lookup table uses `table` if given, else finds its own (`predictor_table`)."""
    return read_predictor_dir(directory, space=space, setting=setting, device_id=device_id,
                              device_fingerprint=device_fingerprint, table=table,
                              allow_mismatch=allow_mismatch).predictor


def read_predictor_dir(directory: str | Path, *, space: str | None = None,
                       setting: str | None = None, device_id: str | None = None,
                       device_fingerprint: Mapping[str, Any] | None = None,
                       table: TableLike | None = None,
                       allow_mismatch: bool = False) -> PredictorDir:
    """The whole predictor directory (predictor, table, metadata; checked as `load_predictor`)
    read from one version: the directory's link is resolved once and every file read through
    it; a read that fails while a save switched the link is done again on the new version (at
    most READ_TRIES times), so a refit replacing the directory never tears a read."""
    directory = Path(directory)
    if device_fingerprint is not None:
        fp_id = device_id_of(device_fingerprint)
        if device_id is not None and device_id != fp_id:
            raise ValueError(f"device_id {device_id!r} and the fingerprint's id {fp_id!r} differ")
        device_id = fp_id
    return one_version(directory, lambda root: _read_version(
        root, directory, space, setting, device_id, table, allow_mismatch))


def one_version(directory: Path, read: Callable[[Path], T]) -> T:
    """`read(version)` on the version `directory` names now, again on the new one when it
    failed for a missing or changed file while a save switched the link."""
    root = current_version(directory)
    for _ in range(READ_TRIES - 1):
        try:
            return read(root)
        except (PredictorFileError, OSError):
            now = current_version(directory)
            if now == root:
                raise
            root = now
    return read(root)


def _read_version(root: Path, directory: Path, space: str | None, setting: str | None,
                  device_id: str | None, table: TableLike | None,
                  allow_mismatch: bool) -> PredictorDir:
    meta = _read_metadata(root, directory)
    if meta["kind"] == TRANSFER_KIND:
        from predictor.transfer import load_transfer

        tp = load_transfer(root, space=space, setting=setting, device_id=device_id,
                           allow_mismatch=allow_mismatch, meta=meta, shown=directory)
        return PredictorDir(tp, tp.base_table, meta, root, reference_ms=tp.reference_ms)
    _check_files(root, meta.get("files", {}))
    if not allow_mismatch:
        _check_expected(meta, directory, space, setting, device_id)
    fs = meta["features"]
    found = None
    if fs["uses_table"] and table is None:
        found = _find_table(root, meta)
        table = _table_entries(found, meta)
    featurizer = make_featurizer(meta["space"], meta["setting"],
                                 table if fs["uses_table"] else None)
    if list(featurizer.names) != list(fs["names"]):
        raise PredictorFileError(
            f"predictor {str(directory)!r} was fitted on {len(fs['names'])} features (version "
            f"{fs['version']}); this version computes {len(featurizer.names)}: refit it")
    names = sorted((n for n in meta["files"] if n.startswith("booster_")),
                   key=lambda n: int(n[len("booster_"):-len(".json")]))
    if not names:
        raise PredictorFileError(f"predictor {str(directory)!r} lists no booster files")
    boosters = []
    for name in names:
        path = root / name
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as e:
            raise PredictorFileError(f"predictor file {directory / name} cannot be read by "
                                     f"XGBoost {xgb.__version__}: {str(e).splitlines()[0]}") from None
        boosters.append(booster)
    with np.load(root / TRAINING, allow_pickle=False) as z:
        train_x, train_y = z["train_x"], z["train_y"]
    prior = Prior(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["prior"].items()})
    pred = LatencyPredictor(
        tuple(boosters), featurizer, _choice(meta["choice"]), prior, meta["unit"],
        PredictorConfig.from_dict(meta["config"]), int(meta["seed"]), meta["device_fingerprint"],
        tuple(meta["train_ids"]), train_x, train_y, meta["created"], meta["table_info"])
    return PredictorDir(pred, found, meta, root, device_table=found,
                        reference_ms=None if found is None else found.reference_ms)


# -- the lookup table of a table-based predictor ----------------------------------------------
def table_info_of(table: LatencyTable, path: str | Path | None = None) -> dict[str, Any]:
    """What a predictor records of its table so that loading finds it again and checks it is
    the same one (content hash): device, space, setting, unit of the entries used, file path."""
    info = {"device_id": table.device_id, "space": table.space, "setting": table.setting,
            "unit": "relative", "sha256": table.to_dict()["sha256"]}
    return info if path is None else info | {"path": str(Path(path).resolve())}


def _table_candidates(directory: Path, info: Mapping[str, Any]) -> list[Path]:
    found = [directory / TABLE_FILE]
    if info.get("path"):
        found.append(Path(info["path"]))
    found.append(Workdir.holding_predictor(directory).table(
        *(str(info.get(k)) for k in ("space", "setting", "device_id"))))
    return list(dict.fromkeys(found))


def _find_table(directory: Path, meta: Mapping[str, Any]) -> LatencyTable:
    info = meta.get("table_info") or {}
    tried = []
    for path in _table_candidates(directory, info):
        if not path.is_file():
            tried.append(f"{path} (missing)")
            continue
        try:
            table = LatencyTable.load(path, space=info.get("space"), setting=info.get("setting"),
                                      device_id=info.get("device_id"))
        except ValueError as e:
            tried.append(f"{path} ({e})")
            continue
        if info.get("sha256") and table.to_dict()["sha256"] != info["sha256"]:
            tried.append(f"{path} (rebuilt since the predictor was fitted)")
            continue
        return table
    raise PredictorFileError(
        f"predictor {str(directory)!r} was fitted with the lookup table of device "
        f"{info.get('device_id')} ({info.get('space')}/{info.get('setting')}), which was not "
        f"found: {'; '.join(tried)}. Copy that table file to {directory / TABLE_FILE}, or fit "
        "the predictor again ('mnas predictor fit')")


def _table_entries(table: LatencyTable, meta: Mapping[str, Any]) -> Mapping[str, float]:
    unit = (meta.get("table_info") or {}).get("unit", meta.get("unit"))
    return table.entries_relative if unit == "relative" else table.entries_ms


def predictor_table(directory: str | Path) -> LatencyTable | None:
    """The lookup table a predictor directory's predictor was fitted with (a transferred one:
    its base's), or None for a predictor without one."""
    directory = Path(directory)

    def read(root: Path) -> LatencyTable | None:
        meta = _read_metadata(root, directory)
        if meta["kind"] == TRANSFER_KIND:
            return predictor_table(root / meta["base"])
        return _find_table(root, meta) if meta["features"]["uses_table"] else None

    return one_version(directory, read)


# Public names of the file helpers, for predictor.transfer.
file_sha256, write_synced, versions = _sha256, _write, _versions
check_files, check_expected = _check_files, _check_expected
