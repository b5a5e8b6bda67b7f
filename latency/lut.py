"""The per-layer latency lookup table of one device and one search-space setting.

LAT_lut(m) = sum of the table entries of m's layers. Entries are stored in ms and relative to a
reference model (MobileNetV2 of the same setting) measured on the same device during the build,
so a table taken while the device ran fast or slow still sums to comparable relative numbers.
The file is JSON with a schema version, the device fingerprint and the space; loading checks all
three and the content hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from mnas_jax.files import write_atomic
from mnas_jax.space import ArchSpec, LayerSpec

TABLE_SCHEMA = 1


class TableMismatchError(ValueError):
    """A table from another device, space or setting than the caller expects."""


class MissingLayerError(ValueError):
    """An architecture has a layer the table does not hold (it is outside the table's space)."""


@dataclasses.dataclass(frozen=True)
class LatencyTable:
    """Per-layer latencies of one device and space setting, in ms and relative to the reference."""

    space: str
    setting: str
    fingerprint: Mapping[str, Any]
    device_id: str
    reference: str
    reference_ms: float
    entries_ms: Mapping[str, float]
    entries_relative: Mapping[str, float]
    build_seconds: float = 0.0

    def layer_ms(self, layer: LayerSpec) -> float:
        """One layer's entry in ms; MissingLayerError when the table lacks it."""
        try:
            return self.entries_ms[layer.key]
        except KeyError:
            raise MissingLayerError(
                f"layer {layer.key} is not in the {self.space}/{self.setting} table of device "
                f"{self.device_id}: the architecture is outside the table's space"
            ) from None

    def layer_relative(self, layer: LayerSpec) -> float:
        """One layer's entry relative to the reference; MissingLayerError when it is missing."""
        self.layer_ms(layer)
        return self.entries_relative[layer.key]

    def sum_ms(self, spec: ArchSpec) -> float:
        """LAT_lut(m) in milliseconds."""
        return sum(self.layer_ms(layer) for layer in spec.layers())

    def sum_relative(self, spec: ArchSpec) -> float:
        """LAT_lut(m) relative to the reference model measured beside the entries."""
        return sum(self.layer_relative(layer) for layer in spec.layers())

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The file's content: schema version, content hash and the table."""
        body = dataclasses.asdict(self)
        body["entries_ms"] = dict(sorted(self.entries_ms.items()))
        body["entries_relative"] = dict(sorted(self.entries_relative.items()))
        body["fingerprint"] = dict(self.fingerprint)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return {"schema": TABLE_SCHEMA, "sha256": digest, "table": body}

    def save(self, path: str | Path) -> Path:
        """Atomic write: a crash leaves the old file or the new one, never half of one."""
        return write_atomic(path, json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path, *, space: str | None = None, setting: str | None = None,
             device_id: str | None = None, allow_mismatch: bool = False) -> LatencyTable:
        """Read a table file: schema and hash checked, and space, setting and device unless told."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"latency table {str(path)!r} does not exist; build one with "
                                    "'mnas latency build-lut'")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            body = doc["table"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"latency table {str(path)!r} is truncated or not a table file; "
                             "rebuild it (measurements in the store are reused)") from None
        if doc.get("schema") != TABLE_SCHEMA:
            raise ValueError(f"latency table {str(path)!r} has schema {doc.get('schema')!r}; "
                             f"this version reads {TABLE_SCHEMA}")
        if hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() != doc.get("sha256"):
            raise ValueError(f"latency table {str(path)!r} is corrupted (content hash differs); "
                             "rebuild it (measurements in the store are reused)")
        table = cls(**body)
        if not allow_mismatch:
            for field, want in (("space", space), ("setting", setting), ("device_id", device_id)):
                have = getattr(table, field)
                if want is not None and have != want:
                    raise TableMismatchError(
                        f"latency table {str(path)!r} is for {field} {have!r}, not {want!r}; "
                        "build a table for this one or pass allow_mismatch")
        return table
