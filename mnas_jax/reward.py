"""MnasNet's multi-objective reward: R = ACC * (LAT / T) ** w.

w = alpha when LAT <= T, beta otherwise (Tan et al. 2019, eq. 2). The `soft` preset
(alpha = beta = -0.07) trades about 5% accuracy for a 2x latency change and spreads the sampled
models around T; `hard` (alpha = 0, beta = -1) only rewards accuracy below T and punishes
latency above it steeply.

T is given in milliseconds or relative to a reference model measured on the same device
(`1.0x mobilenetv2`): absolute Pixel-1 budgets mean nothing on a machine several times faster.
Resolving the reference's milliseconds is the caller's job (it needs a device); `Target` keeps
the parsed form and converts once the reference is known.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PRESETS", "RewardConfig", "Target", "reward"]

# name -> (alpha, beta); defined once here, used by RewardConfig.preset and the CLI.
PRESETS: dict[str, tuple[float, float]] = {
    "soft": (-0.07, -0.07),
    "hard": (0.0, -1.0),
}

_TARGET_FORMS = "'<number>ms' or '<number>' (milliseconds), or '<factor>x <reference model>'"
_MS_RE = re.compile(r"^\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:ms)?\s*$")
_REL_RE = re.compile(
    r"^\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*x\s+(?P<ref>[A-Za-z0-9_.\-]+)\s*$"
)


def reward(acc: Any, lat: Any, target: Any, alpha: float, beta: float) -> Any:
    """R = acc * (lat / target) ** w with w = alpha if lat <= target else beta.

    Vectorised: takes Python floats, numpy arrays or jax arrays (also under jit) and broadcasts.
    Returns a jax array if any input is one, a numpy value otherwise. Latency and target must be
    positive; that is checked for concrete (non-jax) inputs only.
    """
    if any(isinstance(x, jax.Array) for x in (acc, lat, target)):
        xp: Any = jnp
    else:
        xp = np
        lat_np = np.asarray(lat, dtype=np.float64)
        target_np = np.asarray(target, dtype=np.float64)
        if not np.all(np.isfinite(lat_np)) or np.any(lat_np <= 0):
            raise ValueError(f"latency must be finite and > 0 ms, got {lat!r}")
        if not np.all(np.isfinite(target_np)) or np.any(target_np <= 0):
            raise ValueError(f"target latency must be finite and > 0 ms, got {target!r}")
    lat_a = xp.asarray(lat)
    ratio = lat_a / target
    w = xp.where(lat_a <= target, alpha, beta)
    return xp.asarray(acc) * ratio**w


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Target latency T and the two exponents of the reward. T is in the unit LAT(m) comes in
    (milliseconds, or multiples of a reference model measured beside it): the reward only uses
    the ratio LAT / T."""

    target: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"reward target must be a finite latency > 0, got {self.target!r}")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"reward {name} must be a finite number, got {value!r}")

    @classmethod
    def preset(cls, name: str, target: float) -> RewardConfig:
        """Build the `soft` or `hard` setting of the paper for target T (in LAT's unit)."""
        if name not in PRESETS:
            raise ValueError(
                f"unknown reward preset {name!r}; choose one of {sorted(PRESETS)} "
                "or give alpha and beta explicitly"
            )
        alpha, beta = PRESETS[name]
        return cls(target=float(target), alpha=alpha, beta=beta)

    def __call__(self, acc: Any, lat: Any) -> Any:
        return reward(acc, lat, self.target, self.alpha, self.beta)


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed latency target: `value` ms (unit 'ms') or `value` x a reference model (unit 'x')."""

    value: float
    unit: str = "ms"
    reference_name: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"target value must be finite and > 0, got {self.value!r}")
        if self.unit == "ms":
            if self.reference_name is not None:
                raise ValueError(
                    f"a target in ms takes no reference model, got {self.reference_name!r}"
                )
        elif self.unit == "x":
            if not self.reference_name:
                raise ValueError(
                    "a relative target needs a reference model name, e.g. '1.0x mobilenetv2'"
                )
        else:
            raise ValueError(f"target unit must be 'ms' or 'x', got {self.unit!r}")

    @classmethod
    def parse(cls, text: str | float | int) -> Target:
        """Parse '75ms', '75' or '1.0x mobilenetv2'; anything else raises ValueError."""
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls(float(text), "ms")
        if not isinstance(text, str):
            raise ValueError(f"latency target {text!r} is not a string; use {_TARGET_FORMS}")
        match = _MS_RE.match(text)
        if match:
            return cls(float(match["value"]), "ms")
        match = _REL_RE.match(text)
        if match:
            return cls(float(match["value"]), "x", match["ref"].lower())
        raise ValueError(f"cannot parse latency target {text!r}; use {_TARGET_FORMS}")

    @property
    def is_relative(self) -> bool:
        """Whether the target is a multiple of a reference model's latency."""
        return self.unit == "x"

    def __str__(self) -> str:
        if self.unit == "ms":
            return f"{self.value:g}ms"
        return f"{self.value:g}x {self.reference_name}"
