"""A reader loading a predictor directory while refits replace it gets one whole version: the
predictor, its lookup table and its metadata from the same save (issue 22, item 2). Real parts:
XGBoost fits and refits, `save_predictor` / `read_predictor_dir`, and the search's own refit
(`PredictorEstimator.add_points`, what a calibration round runs)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from latency.lut import LatencyTable
from mnas_jax.search.pipeline import PredictorEstimator
from mnas_jax.space import get_space, sample_specs
from predictor.io import TABLE_FILE, read_predictor_dir, save_predictor, table_info_of
from predictor.model import PredictorConfig, fit_predictor

SLICE = "mnasnet@op=2,kernel=0,se=0,skip=1,filters=1"
CONFIG = PredictorConfig(ensemble=2, grid=((2, 1.0),), max_rounds=60)
FINGERPRINT = {"kind": "local", "cpu_model": "test cpu", "runtime": "litert",
               "runtime_version": "2.3.0", "threads": 1, "delegate": "xnnpack", "extra": {}}


def _table(space, scale: float) -> LatencyTable:
    """A table of the slice whose entries depend on `scale` (so each has its own content hash)."""
    layers = space.table_layers()
    rel = {layer.key: scale * (0.01 + 1e-6 * layer.in_size ** 2 * layer.out_channels)
           for layer in layers}
    return LatencyTable(space=space.name, setting=space.setting, fingerprint=FINGERPRINT,
                        device_id="dev", reference="mobilenetv2", reference_ms=1.0 * scale,
                        entries_ms=rel, entries_relative=rel)


def _fit(space, specs, table, seed):
    y = [table.sum_relative(s) * (1.1 + 0.01 * i) for i, s in enumerate(specs)]
    return fit_predictor(specs, y, space_name=space.name, setting=space.setting,
                         table=table.entries_relative, ids=[s.arch_id for s in specs],
                         unit="relative", device_fingerprint=FINGERPRINT,
                         table_info=table_info_of(table), seed=seed, config=CONFIG)


def _check_whole(loaded) -> str:
    """Every part of one load comes from one save; returns the table's hash."""
    meta, pred = loaded.metadata, loaded.predictor
    assert list(pred.train_ids) == meta["train_ids"] and len(pred.train_x) == meta["n_train"]
    assert pred.created == meta["created"] and pred.seed == meta["seed"]
    digest = loaded.table.to_dict()["sha256"]
    assert digest == meta["table_info"]["sha256"] == pred.table_info["sha256"]
    return digest


@pytest.mark.parametrize("keep_seconds", [None, 0.0], ids=["kept", "retried"])
def test_a_reader_gets_one_whole_version_while_refits_replace_it(tmp_path, monkeypatch,
                                                                 keep_seconds):
    """`kept`: old versions stay for KEEP_SECONDS; `retried`: removed at once, so a reader
    that meets a missing file reads the new version again."""
    if keep_seconds is not None:
        monkeypatch.setattr("mnas_jax.files.KEEP_SECONDS", keep_seconds)
    space = get_space(SLICE, "fmnist")
    specs = sample_specs(space, 40, 0)
    pdir = tmp_path / "predictors" / "p"
    table = _table(space, 1.0)
    save_predictor(_fit(space, specs[:8], table, 0), pdir, table=table)
    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                loaded = read_predictor_dir(pdir)
                digest = _check_whole(loaded)
                value, _ = loaded.predictor.predict(specs[:2])
                assert np.all(np.isfinite(value))
                seen.append((len(loaded.predictor.train_ids), digest))
            except Exception as err:  # noqa: BLE001 - any failure to read whole is the defect
                errors.append(repr(err))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(1, 9):
            if k % 3 == 0:  # a new fit with a new table: every file differs
                table = _table(space, 1.0 + k / 10)
                save_predictor(_fit(space, specs[:8 + k], table, k), pdir, table=table)
            else:  # a calibration refit (the search's own code): table.json is carried over
                est = PredictorEstimator(read_predictor_dir(pdir).predictor, pdir)
                new = specs[8 + 3 * k:8 + 3 * k + 3]
                est.add_points(new, [table.sum_relative(s) for s in new],
                               [s.arch_id for s in new])
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[:3]
    assert len(set(seen)) >= 4  # the reader saw several versions, each whole
    final = read_predictor_dir(pdir)
    assert (final.version / TABLE_FILE).is_file() and _check_whole(final)
