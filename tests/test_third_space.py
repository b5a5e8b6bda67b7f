"""A third search space plugs in through `mnas_jax.space` alone: registered here (nothing else of
the project is touched), it gets a lookup table measured on the real local LiteRT device and
predictor features, as the built-in spaces do."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pytest

from latency.cached import ensure_table
from latency.lut import LatencyTable
from latency.workdir import Workdir
from latency.session import DeviceSession
from mnas_jax.space import (
    Activation,
    ArchSpec,
    BlockSpec,
    Op,
    Skip,
    SpaceDefaults,
    get_space,
    register_space,
    sample_specs,
    sample_tokens,
    unregister_space,
)
from predictor.features import Featurizer

OPS = ((Op.CONV, 1), (Op.SEPCONV, 1), (Op.MBCONV, 3))
PLAN = ((8, 1), (16, 2), (16, 1))  # (out channels, stride) of each one-layer block


@dataclasses.dataclass(frozen=True)
class TinySpace(SpaceDefaults):
    """Three one-layer blocks, each a 3x3 conv, sepconv or mbconv e3, in the fmnist setting."""

    name: str = "tiny"
    setting: str = "fmnist"

    @property
    def reference_name(self) -> str:
        return "mobilenetv2"

    @property
    def choices(self) -> tuple[int, ...]:
        return (len(OPS),) * len(PLAN)

    @property
    def decision_names(self) -> tuple[str, ...]:
        return tuple(f"l{i}.op" for i in range(len(PLAN)))

    def decode(self, tokens: Sequence[int]) -> ArchSpec:
        blocks = tuple(BlockSpec(OPS[t][0], 3, OPS[t][1], 0.0, Skip.NONE, c, 1, s)
                       for t, (c, s) in zip(tokens, PLAN))
        return ArchSpec(blocks=blocks, input_size=32, input_channels=1, num_classes=10,
                        stem_channels=8, stem_stride=1, head_channels=32, dropout=0.0,
                        activation=Activation.RELU)

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        toks = tuple(next((t for t in range(len(OPS)) if self.decode([t] * len(PLAN)).blocks[i] == b), -1)
                     for i, b in enumerate(spec.blocks))
        if len(toks) != len(PLAN) or -1 in toks or self.decode(toks) != spec:
            raise ValueError(f"architecture {spec.arch_id} is outside the tiny space")
        return toks


@pytest.fixture
def tiny():
    register_space("tiny", lambda setting: TinySpace(), ("fmnist",))
    yield get_space("tiny")
    unregister_space("tiny")


def test_registered_space_round_trips_and_names_are_unique(tiny):
    for tokens in sample_tokens(tiny.choices, 0, 10):
        assert tiny.encode(tiny.decode(tokens)) == tuple(tokens)
    with pytest.raises(ValueError, match="registered already"):
        register_space("tiny", lambda setting: TinySpace(), ("fmnist",))
    with pytest.raises(ValueError, match="no setting 'imagenet'"):
        get_space("tiny", "imagenet")
    sliced = get_space("tiny@l0.op=2")
    assert sliced.choices == (1, 3, 3) and len(sliced.table_layers()) < len(tiny.table_layers())


def test_tiny_space_gets_a_table_on_the_local_device_and_features(tiny, tmp_path):
    layers = tiny.table_layers()
    assert len(layers) == 1 + 3 + 3 + 3 + 3  # stem, 3 ops x 3 blocks, head conv + pool + fc
    with DeviceSession.open("local", tmp_path) as session:
        table = ensure_table(session, tmp_path, tiny, progress=False, passes=1)
        device_id = session.device.fingerprint().device_id
    assert set(table.entries_ms) == {layer.key for layer in layers}
    assert all(v > 0 for v in table.entries_relative.values())
    again = LatencyTable.load(Workdir(tmp_path).table("tiny", "fmnist", device_id), space="tiny")
    assert again.entries_ms == table.entries_ms
    specs = sample_specs(tiny, 5, seed=1)
    feat = Featurizer(tiny, table.entries_relative)
    fast = feat.from_specs(specs)
    np.testing.assert_allclose(fast, np.stack([feat.features_direct(s) for s in specs]))
    col = feat.names.index("table_ms")
    np.testing.assert_allclose(fast[:, col], [table.sum_relative(s) for s in specs])
    assert feat.feature_set.n_stages == 3
