"""Interleaved measuring against drift: time a fixed reference model between the candidates.

This machine (and phones: thermal state, governors) speeds up and slows down as a whole; a
model's median drifts over minutes far more than over a second or two. Measuring
R C1 R C2 ... Cn R and dividing each candidate's median by the mean of the two reference medians
beside it gives a ratio that stays put. The reference's own series is the device's drift record.

What is left is the spread of one measurement itself (memory layout, caches of a fresh
interpreter), which moves one ratio a little between passes. `combine_rounds` averages that
down: k rounds of R C1 R ... Cn R (alternating direction, so a linear drift cancels) and the
median of each candidate's k ratios (for 2 rounds their mean; from 3 rounds on, one round the
machine disturbed no longer moves the result); every round is stored as measured. The numbers
behind this: benchmarks/reports/measured_earlier.md.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from latency.devices.base import Device
from latency.measurement import Measurement, model_hash
from latency.protocol import MeasureProtocol
from latency.store import MeasurementRecord
from mnas_jax.progress import Progress


@dataclass(frozen=True)
class CandidateResult:
    """One candidate: its measurement, the reference beside it, and their ratio."""

    key: str
    model_hash: str
    measurement: Measurement
    reference_ms: float
    relative: float


@dataclass(frozen=True)
class InterleavedResult:
    """One interleaved run: the candidates' results and the reference series around them."""

    candidates: tuple[CandidateResult, ...]
    reference: tuple[Measurement, ...]  # R before C1, after C1, ..., after Cn
    reference_hash: str

    def by_key(self) -> dict[str, CandidateResult]:
        """The candidates by key."""
        return {c.key: c for c in self.candidates}

    @property
    def reference_spread(self) -> float:
        """max/min of the reference medians: how much the device drifted during the run."""
        medians = [m.median_ms for m in self.reference]
        return max(medians) / min(medians)


def relative_latencies(candidate_ms: Sequence[float], reference_ms: Sequence[float]
                       ) -> list[tuple[float, float]]:
    """(reference_ms, relative) per candidate from the R C1 R ... Cn R medians.

    Candidate i sits between reference i and i+1; its reference is their mean.
    """
    if len(reference_ms) != len(candidate_ms) + 1:
        raise ValueError(f"{len(candidate_ms)} candidates need {len(candidate_ms) + 1} reference "
                         f"medians around them, got {len(reference_ms)}")
    out = []
    for i, c in enumerate(candidate_ms):
        ref = (reference_ms[i] + reference_ms[i + 1]) / 2
        if ref <= 0:
            raise ValueError(f"reference median {ref} ms is not positive")
        out.append((ref, c / ref))
    return out


def measure_interleaved(device: Device, items: Sequence[tuple[str, bytes]], reference: bytes,
                        protocol: MeasureProtocol, progress: bool = False) -> InterleavedResult:
    """Measure R C1 R C2 ... Cn R on `device`; keys must be unique."""
    keys = [k for k, _ in items]
    if not keys:
        raise ValueError("measure_interleaved needs at least one (key, model bytes) item")
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate keys {dupes}: each candidate needs its own key")

    refs: list[Measurement] = []
    found: list[Measurement] = []

    def measure_reference() -> None:
        refs.append(device.measure(reference, protocol))

    with Progress("measuring", len(items), enabled=progress, transient=True) as bar:
        measure_reference()
        for key, model in items:
            found.append(device.measure(model, protocol))
            measure_reference()
            bar.advance(f"measured {key}")
    pairs = relative_latencies([m.median_ms for m in found],
                               [m.median_ms for m in refs])
    candidates = tuple(CandidateResult(key, model_hash(model), m, ref, rel)
                       for (key, model), m, (ref, rel) in zip(items, found, pairs))
    return InterleavedResult(candidates, tuple(refs), model_hash(reference))


def combine_rounds(rounds: Sequence[InterleavedResult]) -> InterleavedResult:
    """One result from several rounds over the same candidates: per candidate the median of its
    relative latencies, the geometric mean of its reference medians, the median of its medians, the min
    of its mins, all runs counted; the references of every round in order (the drift record)."""
    if not rounds:
        raise ValueError("combine_rounds needs at least one round")
    keys = [c.key for c in rounds[0].candidates]
    by_round = [r.by_key() for r in rounds]
    if any(sorted(b) != sorted(keys) for b in by_round):
        raise ValueError("rounds measured different candidates")
    if len(rounds) == 1:
        return rounds[0]

    def gmean(values: Sequence[float]) -> float:
        return math.exp(sum(math.log(v) for v in values) / len(values))

    out = []
    for key in keys:
        cs = [b[key] for b in by_round]
        ms = [c.measurement for c in cs]
        merged = dataclasses.replace(
            ms[0], median_ms=statistics.median(m.median_ms for m in ms),
            min_ms=min(m.min_ms for m in ms), iqr_ms=statistics.median(m.iqr_ms for m in ms),
            cv=statistics.median(m.cv for m in ms), runs=sum(m.runs for m in ms),
            seconds=sum(m.seconds for m in ms), retries=sum(m.retries for m in ms))
        out.append(CandidateResult(key, cs[0].model_hash, merged,
                                   gmean([c.reference_ms for c in cs]),
                                   statistics.median([c.relative for c in cs])))
    refs = tuple(p for r in rounds for p in r.reference)
    return InterleavedResult(tuple(out), refs, rounds[0].reference_hash)


def measure_rounds(device: Device, items: Sequence[tuple[str, bytes]], reference: bytes,
                   protocol: MeasureProtocol, rounds: int, progress: bool = False,
                   on_round: Callable[[InterleavedResult], None] | None = None
                   ) -> InterleavedResult:
    """`rounds` interleaved passes (odd ones in reverse order), combined; `on_round` sees (and
    typically stores) each pass as soon as it is measured."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: use 1 or more")
    results = []
    for r in range(rounds):
        order = list(items) if r % 2 == 0 else list(reversed(items))
        result = measure_interleaved(device, order, reference, protocol, progress=progress)
        if on_round is not None:
            on_round(result)
        results.append(result)
    return combine_rounds(results)


def interleaved_records(result: InterleavedResult, protocol: MeasureProtocol, *, session: str,
                        source: str, kind: str = "arch", reference_key: str = "reference",
                        arch_info: Mapping[str, tuple[str | None, str | None]] | None = None
                        ) -> list[MeasurementRecord]:
    """Store rows in measurement order (R C1 R C2 ... R): candidates with reference_ms and
    relative, references with kind 'reference'. arch_info maps a key to (arch_id, spec JSON)."""
    arch_info = arch_info or {}

    def ref_record(point: Measurement) -> MeasurementRecord:
        return MeasurementRecord.from_measurement(
            point, model_hash=result.reference_hash, kind="reference",
            protocol=protocol, session=session, source=source, key=reference_key)

    records = [ref_record(result.reference[0])]
    for c, point in zip(result.candidates, result.reference[1:]):
        arch_id, spec = arch_info.get(c.key, (None, None))
        records.append(MeasurementRecord.from_measurement(
            c.measurement, model_hash=c.model_hash, kind=kind, protocol=protocol,
            session=session, source=source, key=c.key, arch_id=arch_id, arch_spec=spec,
            reference_ms=c.reference_ms, relative=c.relative))
        records.append(ref_record(point))
    return records
