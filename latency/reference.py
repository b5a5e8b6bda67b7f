"""A device's reference time, per setting: the one place that says which stored reference rows
make it.

Every reference measurement is stored with the hash of the converted model measured
(`model_hash`), and that hash is the key: MobileNetV2 at 224x224 (imagenet) and at 32x32 (fmnist)
are different models with different hashes, so a work directory that measured both settings
never mixes them. Tables (`reference_ms`), `predict`'s milliseconds and ms targets all read the
time through `stored_reference_ms`.
"""

from __future__ import annotations

import statistics

from latency.store import MeasurementStore

RECENT = 20  # reference rows a "recent" median is taken over (drift moves older ones)


def stored_reference_ms(store: MeasurementStore, device_id: str, reference_hash: str, *,
                        last: int | None = RECENT) -> float | None:
    """Median ms of the device's stored measurements of the reference model whose converted
    bytes hash to `reference_hash` (its `last` ones; None: all); None when there are none."""
    refs = [r.record.median_ms for r in store.measurements(kind="reference", device_id=device_id)
            if r.record.model_hash == reference_hash]
    if last is not None:
        refs = refs[-last:]
    return float(statistics.median(refs)) if refs else None
