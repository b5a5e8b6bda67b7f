"""The search's target in its unit (multiples of the space's reference), and which space a
predictor of a related space searches."""

from __future__ import annotations

import pytest

from mnas_jax.search.target import resolve_target
from mnas_jax.space import get_space, narrower_space


def test_relative_and_ms_targets_resolve_to_multiples_of_the_reference():
    space = get_space("mnasnet", "fmnist")
    t = resolve_target("0.8x mobilenetv2", space, None)
    assert (t.value, t.unit) == (0.8, "x mobilenetv2")
    assert resolve_target("2ms", space, 4.0).value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="never measured"):
        resolve_target("2ms", space, None)
    with pytest.raises(ValueError, match="against mobilenetv2"):
        resolve_target("1.0x mnasnet-a1", space, None)
    with pytest.raises(ValueError, match="no reference model"):
        resolve_target("1.0x mobilenetv2", get_space("fbnet"), None)


def test_narrower_space():
    s = "mnasnet@op=2"
    assert narrower_space(s, "mnasnet") == s and narrower_space("mnasnet", s) == s
    assert narrower_space("mnasnet", "mnasnet") == "mnasnet"
    assert narrower_space("fbnet", "mnasnet") is None and narrower_space("mnasnet@op=1", s) is None
