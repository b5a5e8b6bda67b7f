"""Measuring architectures on a device with drift control and storing every result.

The pieces a command or a search needs together: a device (pinned away from the converter when
it is the local CPU), an exporter converting ahead in another process, the reference model of the
setting, and the store.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path

from latency.devices import open_device
from latency.devices.base import Device
from latency.devices.local import LocalDevice
from latency.interleaved import InterleavedResult, interleaved_records, measure_rounds
from latency.prefetch import PrefetchExporter, split_cores
from latency.protocol import MeasureProtocol
from latency.store import MeasurementStore, new_session_id
from latency.workdir import Workdir
from mnas_jax.space import ArchSpec, SETTINGS, reference

REFERENCE = "mobilenetv2"

#: How a session measures architectures, chosen on the label noise floor (the same 50 fresh
#: MnasNet-224 archs measured in two passes, pass 2 scored against pass 1;
#: benchmarks/reports/latency_noise_floor.md). On a core shared with other jobs (within-run CV
#: 5-30%) the protocol before (2 rounds, re-measuring while the CV is above 5%) had a floor of
#: +-5% 54% / +-10% 75% / tau 0.874 at 14 s per arch; this one (4 rounds, no re-measuring)
#: 74% / 94% / 0.925 at 10 s. Rounds are what lowers the floor; re-measuring fired almost
#: always there and tripled the cost for -9 to +6 points at equal rounds (on a quiet core it
#: seldom fires, so there the 4 rounds cost about twice the 2).
ARCH_PROTOCOL = MeasureProtocol(max_retries=0)
ARCH_ROUNDS = 4


def setting_of(spec: ArchSpec) -> str:
    """The setting whose input and classes the spec has (for its reference model)."""
    for s in SETTINGS.values():
        if (spec.input_size, spec.input_channels, spec.num_classes) == (
                s.input_size, s.input_channels, s.num_classes):
            return s.name
    raise ValueError(f"architecture {spec.arch_id} ({spec.input_size}x{spec.input_size}x"
                     f"{spec.input_channels}, {spec.num_classes} classes) matches no setting "
                     f"({', '.join(SETTINGS)}): its latency has no reference model")


@dataclasses.dataclass
class DeviceSession:
    """An open device + converter + store for one command or search."""

    device: Device
    store: MeasurementStore
    exporter: PrefetchExporter
    source: str
    protocol: MeasureProtocol = ARCH_PROTOCOL
    rounds: int = ARCH_ROUNDS  # interleaved rounds per measurement of a set of archs

    @classmethod
    def open(cls, device_spec: str, workdir: str | Path | Workdir,
             protocol: MeasureProtocol | None = None, rounds: int = ARCH_ROUNDS) -> DeviceSession:
        """Open the device, the store of ``workdir`` and an exporter (1-thread local: own core)."""
        workdir = Workdir.of(workdir)
        device = open_device(device_spec)
        convert_cores = None
        # a single-threaded local device gets a core of its own; a multi-threaded one takes every
        # core (no pinning) unless it was given one
        if isinstance(device, LocalDevice) and (device.threads == 1 or device.core is not None):
            measure_core, convert_cores = split_cores(device.core)
            if device.core is None and measure_core is not None:
                device = LocalDevice(threads=device.threads, xnnpack=device.xnnpack,
                                     core=measure_core)
        store = MeasurementStore.in_workdir(workdir)
        exporter = PrefetchExporter(workdir.tflite_cache, convert_cores)
        return cls(device, store, exporter, device_spec.split(":")[0],
                   protocol or ARCH_PROTOCOL, rounds)

    def close(self) -> None:
        """Stop the exporter's workers and close the store."""
        self.exporter.close()
        self.store.close()

    def __enter__(self) -> DeviceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reference_bytes(self, setting: str, name: str = REFERENCE) -> bytes:
        """The reference model `name` of `setting`, converted."""
        return next(self.exporter.archs([reference(name, setting)]))

    def measure_archs(self, specs: Sequence[ArchSpec], *, progress: bool = False,
                      kind: str = "arch", rounds: int | None = None,
                      session_id: str | None = None) -> InterleavedResult:
        """Measure R A1 R A2 ... R (reference = MobileNetV2 of the setting) `rounds` times
        (default: the session's); store every row of every round (under `session_id`, default a
        fresh id); return the rounds combined (see latency.interleaved.combine_rounds)."""
        settings = {setting_of(s) for s in specs}
        if len(settings) != 1:
            raise ValueError(f"architectures of several settings {sorted(settings)}: measure "
                             "each setting separately (each has its own reference model)")
        unique = list({s.arch_id: s for s in specs}.values())
        ref = self.reference_bytes(settings.pop())
        items = list(zip([s.arch_id for s in unique], self.exporter.archs(unique)))
        info = {s.arch_id: (s.arch_id, s.to_json()) for s in unique}
        session_id = session_id or new_session_id()

        def store_round(result: InterleavedResult) -> None:  # one transaction: a pass is stored whole
            self.store.append_many(interleaved_records(result, self.protocol, session=session_id,
                                                       source=self.source, kind=kind,
                                                       reference_key=REFERENCE, arch_info=info))

        return measure_rounds(self.device, items, ref, self.protocol,
                              self.rounds if rounds is None else rounds, progress=progress,
                              on_round=store_round)

    def measure_tagged(self, specs: Sequence[ArchSpec], tag: str, rounds: int, *,
                       progress: bool = False) -> list[float]:
        """Relative latency per spec from `rounds` passes stored under the session `tag`.

        Resumable: passes that an earlier, killed run stored under the same tag are reused and
        only the missing passes are measured, so nothing stored is measured twice. Each value is
        the median over the passes (robust to one pass the machine disturbed).
        """
        unique = list({s.arch_id: s for s in specs}.values())

        def stored() -> dict[str, list[float]]:
            out: dict[str, list[float]] = {}
            for row in self.store.measurements(session=tag, kind="arch"):
                if row.record.arch_id is not None and row.record.relative is not None:
                    out.setdefault(row.record.arch_id, []).append(row.record.relative)
            return out

        have = stored()
        done = min(len(have.get(s.arch_id, ())) for s in unique)
        if done < rounds:
            self.measure_archs(unique, progress=progress, rounds=rounds - done, session_id=tag)
            have = stored()
        return [statistics.median(have[s.arch_id]) for s in specs]
