"""What one latency measurement is: the numbers and the device they came from.

A `Fingerprint` travels with every result so numbers from different phones, runtimes, thread
counts or delegates are never mixed up; its `device_id` is the short key the store indexes by.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Kinds of hardware access. A device reached through `mnas device serve` keeps the served
#: device's own fingerprint (same phone, same device_id), so there is no "remote" kind.
FINGERPRINT_KINDS = ("local", "adb")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the form that is hashed and stored."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def model_hash(model_bytes: bytes) -> str:
    """sha256 of the model bytes: the identity of exactly what was measured."""
    return hashlib.sha256(model_bytes).hexdigest()


def check_json_fields(cls: type, data: Mapping[str, Any]) -> None:
    """ValueError if `data` has fields unknown to dataclass `cls` or lacks required ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.name not in data and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if unknown or missing:
        raise ValueError(f"bad {cls.__name__} JSON: unknown fields {unknown}, missing {missing}")


@dataclass(frozen=True)
class Fingerprint:
    """Where and how a model ran: hardware, runtime, threads and delegate.

    `extra` holds identifying details that are not comparable across kinds (host name, ADB
    serial, phone model, pinned core); it is stored as sorted (name, value) pairs so the
    dataclass stays hashable.
    """

    kind: str
    cpu_model: str
    runtime: str
    runtime_version: str
    threads: int
    delegate: str
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in FINGERPRINT_KINDS:
            raise ValueError(f"fingerprint kind {self.kind!r} is not one of {FINGERPRINT_KINDS}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"fingerprint threads must be a positive int, got {self.threads!r}")
        extra = self.extra.items() if isinstance(self.extra, Mapping) else self.extra
        object.__setattr__(self, "extra", tuple(sorted((str(k), str(v)) for k, v in extra)))

    @property
    def device_id(self) -> str:
        """Short stable hash of the canonical JSON: equal fingerprints, equal ids."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """The fingerprint as a JSON-ready dict (`extra` as a mapping)."""
        d = dataclasses.asdict(self)
        d["extra"] = dict(self.extra)
        return d

    def to_json(self) -> str:
        """The fingerprint as canonical JSON text."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        """Rebuild a fingerprint from `to_dict`'s output; ValueError for bad fields."""
        check_json_fields(cls, data)
        return cls(**{**data, "extra": tuple(dict(data.get("extra", {})).items())})

    @classmethod
    def from_json(cls, text: str) -> Fingerprint:
        """Parse a fingerprint from `to_json`'s text."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Measurement:
    """Statistics of the timed runs of one model on one device (times in milliseconds).

    `cv` is the robust coefficient of variation IQR / 1.349 / median (equal to std/mean for
    normal noise but blind to the rare preempted run); `retries` counts re-measurements made
    because the CV was above the protocol's threshold.
    """

    median_ms: float
    min_ms: float
    iqr_ms: float
    cv: float
    runs: int
    warmup: int
    seconds: float
    fingerprint: Fingerprint
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The measurement as a JSON-ready dict (fingerprint nested)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["fingerprint"] = self.fingerprint.to_dict()
        return d

    def to_json(self) -> str:
        """The measurement as canonical JSON text."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Rebuild a measurement from `to_dict`'s output; ValueError for bad fields."""
        check_json_fields(cls, data)
        values = dict(data)
        values["fingerprint"] = Fingerprint.from_dict(values["fingerprint"])
        for name in ("median_ms", "min_ms", "iqr_ms", "cv", "seconds"):
            values[name] = float(values[name])
        for name in ("runs", "warmup", "retries"):
            if name in values:
                values[name] = int(values[name])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        """Parse a measurement from `to_json`'s text."""
        return cls.from_dict(json.loads(text))
