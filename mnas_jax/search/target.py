"""The search's latency target resolved into the unit the search runs in: multiples of the
space's reference model, measured beside every candidate on the device."""

from __future__ import annotations

import dataclasses

from mnas_jax.reward import Target
from mnas_jax.space import SearchSpace


@dataclasses.dataclass(frozen=True)
class ResolvedTarget:
    """T as a multiple of the reference model `reference` (its unit reads `x REFERENCE`)."""

    value: float
    reference: str

    @property
    def unit(self) -> str:
        """The unit of `value` and of every predicted or measured latency of the search."""
        return f"x {self.reference}"


def resolve_target(text: str, space: SearchSpace, reference_ms: float | None) -> ResolvedTarget:
    """`text` ('1.0x mobilenetv2' or '75ms') in multiples of the space's reference model; a target
    in ms needs `reference_ms`, the reference's recent median on the device."""
    target = Target.parse(text)
    ref = space.reference_name
    if ref is None:
        raise ValueError(f"space {space.name!r} has no reference model, so a search over it has "
                         "no latency unit on a device")
    if target.is_relative:
        if target.reference_name != ref:
            raise ValueError(f"relative targets are against {ref} (the reference measured beside "
                             f"every candidate), not {target.reference_name}")
        return ResolvedTarget(target.value, ref)
    if reference_ms is None:
        raise ValueError(f"target {text!r} is in ms but {ref} was never measured on this "
                         f"device; give the target as a multiple, e.g. '1.0x {ref}'")
    return ResolvedTarget(target.value / reference_ms, ref)
