"""What one child training reports back: data, including failures."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

OK = "ok"
FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of ``train_and_evaluate``; ``status == 'failed'`` carries the reason instead of raising."""

    arch_id: str
    status: str
    reason: str | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    val_loss: float | None = None
    final_loss: float | None = None
    steps: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    images_per_second: float = 0.0
    config_name: str = ""
    num_devices: int = 1
    dw_impl: str = ""
    loss_curve: tuple[tuple[int, float], ...] = ()  # (step, mean training loss since the last entry)

    @property
    def ok(self) -> bool:
        """Whether the training finished with status OK."""
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN/inf floats become None (JSON has no NaN)."""
        out = dataclasses.asdict(self)
        out["loss_curve"] = [[s, _finite(v)] for s, v in self.loss_curve]
        return {k: _finite(v) for k, v in out.items()}


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
