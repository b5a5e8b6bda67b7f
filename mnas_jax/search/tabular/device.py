"""LAT(m) of a tabular benchmark's architectures measured on a device instead of read from a
column: for a table whose sidecar names a registered space (`"space"`, `"setting"`), so that its
tokens decode into networks the project builds, exports and measures.

Each architecture the search queries is measured once (interleaved with the setting's reference
model, as every measurement of the project) and stored in the work directory's store; a resumed
search or a second search on the same device measures nothing twice. Latencies are the
reference-relative measurement times the reference's recent median on the device, in ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from latency.cached import measure_relative, reference_ms
from latency.session import DeviceSession, setting_of
from mnas_jax.search.tabular.parts import TableArch
from mnas_jax.search.tabular.table import TabularBenchmark
from mnas_jax.space import get_space


def table_space(table: TabularBenchmark) -> Any:
    """The registered space a table's tokens belong to; ValueError when its sidecar names none."""
    if not table.space:
        raise ValueError(f"{table.path} names no registered space (its sidecar {table.path[:-4]}.json has "
                         "no \"space\"), so its rows cannot be built and measured on a device: use its "
                         "latency columns (--latency)")
    space = get_space(table.space, table.setting)
    if tuple(space.choices) != tuple(table.choices):
        raise ValueError(f"{table.path}: its rows have choices {table.choices}, space {table.space!r} "
                         f"has {tuple(space.choices)}")
    return space


class DeviceTableLatency:
    """LAT(m) in ms, measured on the session's device (cached in its store)."""

    unit = "ms"

    def __init__(self, session: DeviceSession, table: TabularBenchmark) -> None:
        self.session, self.space = session, table_space(table)
        self._reference_ms: float | None = None

    def reference_ms(self) -> float:
        """The setting's reference model's recent median ms on the device (measured if need be)."""
        if self._reference_ms is None:
            spec = self.space.decode([0] * len(self.space.choices))
            self._reference_ms = reference_ms(self.session, setting_of(spec))
        return self._reference_ms

    def measure_rows(self, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        """Latency (ms) of architectures given by their tokens."""
        specs = [self.space.decode(list(t)) for t in tokens]
        return measure_relative(self.session, specs, progress=False) * self.reference_ms()

    def predict(self, archs: Sequence[TableArch]) -> tuple[np.ndarray, np.ndarray]:
        """(latency ms, zero uncertainty) per architecture: measured, not predicted."""
        return self.measure_rows([a.tokens for a in archs]), np.zeros(len(archs))
