"""NAS-Bench-Macro as a registered space: every one of its 6,561 networks decodes, round-trips and
has exactly the parameters and FLOPs the benchmark published (so the networks this project
builds, exports and measures are the benchmark's); the shipped derivative carries them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from mnas_jax.costs import arch_macs, arch_params
from mnas_jax.space import get_space, space_names
from mnas_jax.space.nasbench_macro import code_of

DATA = Path(__file__).resolve().parents[1] / "data" / "nas-bench-macro"


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads((DATA / "nas-bench-macro_cifar10.json").read_text())


def test_registered_with_a_reference_for_device_latency() -> None:
    space = get_space("nasbench-macro")
    assert "nasbench-macro" in space_names() and space.setting == "cifar10"
    assert space.choices == (3,) * 8 and space.reference_name == "mobilenetv2"
    assert space.block_stages() == (0, 0, 1, 1, 1, 2, 2, 2)
    assert space.decision_names[0] == "s0l0.op"


def test_every_network_round_trips_with_the_published_params_and_flops(published) -> None:
    space = get_space("nasbench-macro")
    codes = ["".join(map(str, t)) for t in itertools.product(range(3), repeat=8)]
    assert sorted(codes) == sorted(published)
    for code in codes:
        spec = space.parse(code)
        assert code_of(space.encode(spec)) == code
        assert arch_params(spec) == published[code]["params"], code
        assert arch_macs(spec) == published[code]["flops"], code


def test_a_network_outside_the_space_is_named() -> None:
    space = get_space("nasbench-macro")
    other = get_space("fbnet").decode([0] * 22)
    with pytest.raises(ValueError, match="22 blocks"):
        space.encode(other)
    with pytest.raises(ValueError, match="token 3"):
        space.decode([3] + [0] * 7)


def test_table_layers_cover_every_choice() -> None:
    layers = get_space("nasbench-macro").table_layers()
    # stem, 3 choices at each of the 8 positions (some equal), head conv, pool, classifier
    assert 15 <= len(layers) <= 30
    assert len({layer.key for layer in layers}) == len(layers)
