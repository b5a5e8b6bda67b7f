"""Relative latencies a disturbed pass cannot corrupt.

An interleaved pass (R C1 R C2 ... R) gives each candidate the mean of the two reference
medians around it. Seen while selecting the fmnist candidates: in some passes the reference's
own runs scattered (CV 0.9, medians 2-6.6 ms where a quiet pass gives 2.0 +- 0.1), so
candidates beside them came out at half their latency, and MobileNetV2 measured as a candidate
at 0.81x itself. A candidate's value is kept only when both references around it are steady
(CV <= `MAX_CV`) and agree (within `TOLERANCE`); candidates without enough such values are
measured again in another pass. Every pass is stored (the store keeps all measurements); only
the value used here is filtered.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from latency.devices.base import DeviceError
from latency.interleaved import InterleavedResult
from mnas_jax.space import ArchSpec

TOLERANCE = 0.10  # the two references around a candidate: max / min - 1
MAX_CV = 0.20  # coefficient of variation of each of those references' runs
#: One interleaved pass over architectures (keys: arch ids), stored as it is measured.
MeasurePass = Callable[[Sequence[ArchSpec]], InterleavedResult]


def steady_values(result: InterleavedResult, tolerance: float = TOLERANCE,
                  max_cv: float = MAX_CV) -> dict[str, float]:
    """Relative latency by key of the candidates whose two neighbouring references are steady."""
    out = {}
    refs = list(result.reference)
    for i, c in enumerate(result.candidates):
        a, b = refs[i], refs[i + 1]
        if (max(a.cv, b.cv) <= max_cv
                and max(a.median_ms, b.median_ms) / min(a.median_ms, b.median_ms) - 1 <= tolerance):
            out[c.key] = c.relative
    return out


def measure_steady(measure_pass: MeasurePass, specs: Sequence[ArchSpec], *, passes: int = 2,
                   max_passes: int = 6) -> list[float]:
    """Median over ``passes`` steady values per architecture, measuring again (up to
    ``max_passes`` passes) those that have fewer; with at least one steady value an
    architecture takes what it has; with none, DeviceError (the device stayed disturbed)."""
    unique = list({s.arch_id: s for s in specs}.values())
    values: dict[str, list[float]] = {s.arch_id: [] for s in unique}
    for _ in range(max_passes):
        pending = [s for s in unique if len(values[s.arch_id]) < passes]
        if not pending:
            break
        for key, value in steady_values(measure_pass(pending)).items():
            values[key].append(value)
    lost = [k for k, v in values.items() if not v]
    if lost:
        raise DeviceError(f"{len(lost)} architecture(s) got no steady measurement in {max_passes} passes "
                          "(the reference's runs scattered around them: another process shares the "
                          "device's core or memory); run select again on a quieter machine")
    return [statistics.median(values[s.arch_id]) for s in specs]
