"""Features of a resolved architecture for the latency predictor.

Every feature is a sum over layers of a per-layer vector (MACs split by kind, parameters,
activation bytes, op/kernel/SE counts, per-stage sums, lookup-table ms) or a max over layers
(largest weight tensor, largest feature maps). So the features of a whole batch are gathers and
sums of per-block vectors computed once per distinct block: `Featurizer.from_tokens` scores
token arrays at array speed, and `Featurizer.from_specs` goes through the same path (a spec is
encoded to tokens first), so the two can never disagree.

A lookup table is optional: a `LayerCostFn` (ms of one layer on the device) or a mapping from
`LayerSpec.key` to ms. Without it (e.g. the public Pixel 2 data, where no per-layer measurements
exist) the features come from the spec alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from mnas_jax.costs import layer_activation_bytes, layer_macs, layer_params
from mnas_jax.space import ArchSpec, LayerSpec, SearchSpace, get_space, token_rows
from mnas_jax.space.base import block_groups

FEATURE_VERSION = 1
BYTES_PER_VALUE = 4  # float32 weights and activations

LayerCostFn = Callable[[LayerSpec], float]
TableLike = Union[LayerCostFn, Mapping[str, float]]

# Sums over the searchable layers (counts) or over all layers (costs).
_COST_NAMES = ("macs", "macs_conv", "macs_dw", "macs_pw", "macs_se", "macs_fc", "params",
               "act_bytes")
_COUNT_NAMES = ("layers", "op_conv", "op_sepconv", "op_mbconv", "op_ir", "op_ir_grouped",
                "op_skip", "op_skip_conv", "k3", "k5", "k7", "se", "res_identity", "res_pool",
                "expansion_sum")
_STAGE_NAMES = ("macs", "params", "act_bytes", "layers")
_MAX_NAMES = ("max_weight_bytes", "max_act_bytes")


class OutsideSpaceError(ValueError):
    """An architecture (or token row) that the featurizer's search space cannot produce."""


def as_cost_fn(table: TableLike | None) -> LayerCostFn | None:
    """A layer -> ms function from a callable, a key -> ms mapping, or None."""
    if table is None or callable(table):
        return table
    if isinstance(table, Mapping):
        def cost(layer: LayerSpec) -> float:
            try:
                return float(table[layer.key])
            except KeyError:
                raise OutsideSpaceError(
                    f"layer {layer.key} is not in the lookup table ({len(table)} entries): "
                    "the architecture is outside the table's space") from None
        return cost
    raise ValueError(f"table must be a LayerSpec -> ms callable or a key -> ms mapping, "
                     f"got {type(table).__name__}")


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """What the feature columns are: stored in a predictor's metadata and checked on load."""

    space: str
    setting: str
    n_stages: int
    uses_table: bool
    version: int = FEATURE_VERSION

    @property
    def additive_names(self) -> tuple[str, ...]:
        """Names of the features that add up over layers (costs, counts, per-stage sums)."""
        table = ("table_ms",) if self.uses_table else ()
        stage = _STAGE_NAMES + (("table_ms",) if self.uses_table else ())
        per_stage = tuple(f"s{s}_{n}" for s in range(self.n_stages) for n in stage)
        return _COST_NAMES + table + _COUNT_NAMES + per_stage

    @property
    def names(self) -> tuple[str, ...]:
        """Names of every feature, in column order."""
        return self.additive_names + _MAX_NAMES

    def index(self, name: str) -> int:
        """Column of feature ``name``; ValueError listing the features if it is not one."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"feature {name!r} is not in this feature set; "
                             f"features: {list(self.names)}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, feature names included."""
        return {**dataclasses.asdict(self), "names": list(self.names)}


# -- per-layer vectors ------------------------------------------------------------------------
def _mac_parts(layer: LayerSpec) -> dict[str, int]:
    """`layer_macs` split by kind of computation (regular conv, depthwise, 1x1, SE, classifier)."""
    op, k, g = layer.op.value, layer.kernel, layer.groups
    cin, cout = layer.in_channels, layer.out_channels
    hw_in, hw = layer.in_size ** 2, layer.out_size ** 2
    se, mid = layer.se_channels, layer.mid_channels
    parts = dict.fromkeys(("macs_conv", "macs_dw", "macs_pw", "macs_se", "macs_fc"), 0)
    if op == "conv":
        parts["macs_conv" if k > 1 else "macs_pw"] += hw * k * k * cin * cout
        parts["macs_se"] += 2 * cout * se
    elif op == "sepconv":
        parts["macs_dw"] += hw * k * k * cin
        parts["macs_se"] += 2 * cin * se
        parts["macs_pw"] += hw * cin * cout
    elif op in ("mbconv", "ir"):
        if op == "ir" or layer.expansion > 1:
            parts["macs_pw"] += hw_in * cin * mid // g
        parts["macs_dw"] += hw * k * k * mid
        parts["macs_se"] += 2 * mid * se
        parts["macs_pw"] += hw * mid * cout // g
    elif op == "skip" and not (layer.stride == 1 and cin == cout):
        parts["macs_pw"] += hw * cin * cout
    elif op == "fc":
        parts["macs_fc"] += cin * cout
    if layer.skip.value == "pool" and cin != cout:
        parts["macs_pw"] += hw * cin * cout
    return parts


def _largest_weight(layer: LayerSpec) -> int:
    """Values in the layer's largest single weight tensor."""
    op, k, g = layer.op.value, layer.kernel, layer.groups
    cin, cout = layer.in_channels, layer.out_channels
    mid, se = layer.mid_channels, layer.se_channels
    sizes = [cin * cout if layer.skip.value == "pool" and cin != cout else 0]
    if op == "conv":
        sizes += [k * k * cin * cout, cout * se]
    elif op == "sepconv":
        sizes += [k * k * cin, cin * cout, cin * se]
    elif op in ("mbconv", "ir"):
        sizes += [cin * mid // g, k * k * mid, mid * cout // g, mid * se]
    elif op in ("skip", "fc"):
        sizes += [cin * cout if (op == "fc" or layer.stride != 1 or cin != cout) else 0]
    return max(sizes)


def layer_vector(layer: LayerSpec, stage: int | None, fs: FeatureSet,
                 cost: LayerCostFn | None) -> np.ndarray:
    """One layer's contribution; `stage` None for the fixed stem and tail (costs only)."""
    v = dict(_mac_parts(layer))
    v["macs"] = layer_macs(layer)
    v["params"] = layer_params(layer)
    v["act_bytes"] = layer_activation_bytes(layer, BYTES_PER_VALUE)
    if fs.uses_table:
        if cost is None:
            raise ValueError("this feature set uses a lookup table; pass table=")
        v["table_ms"] = cost(layer)
    if stage is not None:
        op = layer.op.value
        v.update(layers=1, se=int(layer.se_ratio > 0), expansion_sum=layer.expansion)
        v[f"op_{op}"] = 1
        v["op_ir_grouped"] = int(op == "ir" and layer.groups > 1)
        v["op_skip_conv"] = int(op == "skip" and (layer.stride != 1
                                                  or layer.in_channels != layer.out_channels))
        if op in ("conv", "sepconv", "mbconv", "ir") and layer.kernel in (3, 5, 7):
            v[f"k{layer.kernel}"] = 1
        v["res_identity"] = int(layer.skip.value == "identity")
        v["res_pool"] = int(layer.skip.value == "pool")
        for n in _STAGE_NAMES + (("table_ms",) if fs.uses_table else ()):
            v[f"s{stage}_{n}"] = v[n]
    v["max_weight_bytes"] = BYTES_PER_VALUE * _largest_weight(layer)
    v["max_act_bytes"] = v["act_bytes"]
    return np.array([float(v.get(n, 0.0)) for n in fs.names])


def _combine(vectors: Sequence[np.ndarray], n_add: int, width: int) -> np.ndarray:
    """Sum the additive columns, max the rest."""
    out = np.zeros(width)
    for v in vectors:
        out[:n_add] += v[:n_add]
        out[n_add:] = np.maximum(out[n_add:], v[n_add:])
    return out


# -- the featurizer ---------------------------------------------------------------------------
class _BlockCache:
    """Vectors of one block slot, keyed by (block tokens, input channels, input size)."""

    def __init__(self, width: int) -> None:
        self.meta: dict[int, tuple[int, int, int]] = {}  # combo -> (repeats, out_ch, stride)
        self.index: dict[int, int] = {}  # code -> row of `vectors`
        self.rows: list[np.ndarray] = []
        self.vectors = np.zeros((0, width))

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of `vectors` for `codes`, and which codes are missing (row -1)."""
        uniq, inv = np.unique(codes, return_inverse=True)
        found = np.array([self.index.get(int(c), -1) for c in uniq], dtype=np.int64)
        return found[inv], uniq[found < 0]

    def add(self, code: int, vector: np.ndarray) -> None:
        if code not in self.index:
            self.index[code] = len(self.rows)
            self.rows.append(vector)

    def freeze(self) -> None:
        if len(self.rows) != len(self.vectors):
            self.vectors = np.stack(self.rows)


def _code(combo: np.ndarray | int, cin: np.ndarray | int, size: np.ndarray | int) -> Any:
    return (np.int64(combo) << 40) + (np.int64(cin) << 20) + np.int64(size)


class Featurizer:
    """Features for one search space (and optionally one device table), cached per block.

    The caches only memoise pure functions of the space and the table; results never depend on
    what was featurized before.
    """

    def __init__(self, space: SearchSpace, table: TableLike | None = None) -> None:
        self.space = space
        self.cost = as_cost_fn(table)
        self.stages = space.block_stages()
        self.feature_set = FeatureSet(space.name, space.setting, max(self.stages) + 1,
                                      self.cost is not None)
        self.width = len(self.feature_set.names)
        self.n_add = len(self.feature_set.additive_names)
        self._decisions = [np.array(ix) for ix in block_groups(space.decision_names).values()]
        choices = np.array(space.choices, dtype=np.int64)
        if max(int(np.prod(choices[ix])) for ix in self._decisions) >= 1 << 22:
            raise ValueError(f"space {space.name!r} has a block with over 2^22 choice "
                             "combinations; the block cache keys cannot hold it")
        self._choices = choices
        self._radix = [np.cumprod(np.r_[1, choices[ix][:-1]]) for ix in self._decisions]
        self._blocks = [_BlockCache(self.width) for _ in self._decisions]
        self._tail = _BlockCache(self.width)
        self._layer_cache: dict[tuple[str, int | None], np.ndarray] = {}
        self._stem: np.ndarray | None = None
        self._start: tuple[int, int] | None = None  # channels, size after the stem

    @property
    def names(self) -> tuple[str, ...]:
        """Names of every feature, in column order."""
        return self.feature_set.names

    # -- slow reference path -------------------------------------------------------------------
    def _layer(self, layer: LayerSpec, stage: int | None) -> np.ndarray:
        key = (layer.key, stage)
        if key not in self._layer_cache:
            self._layer_cache[key] = layer_vector(layer, stage, self.feature_set, self.cost)
        return self._layer_cache[key]

    def _split(self, spec: ArchSpec) -> tuple[LayerSpec, list[tuple[LayerSpec, ...]], tuple]:
        layers = spec.layers()
        blocks, i = [], 1
        for b in spec.blocks:
            blocks.append(layers[i:i + b.repeats])
            i += b.repeats
        return layers[0], blocks, layers[i:]

    def features_direct(self, spec: ArchSpec) -> np.ndarray:
        """Sum over `spec.layers()` one by one: the slow reference the fast path is checked by."""
        stem, blocks, tail = self._split(spec)
        if len(blocks) != len(self.stages):
            raise OutsideSpaceError(f"architecture has {len(blocks)} blocks; the "
                                    f"{self.space.name} space has {len(self.stages)}")
        vecs = [self._layer(stem, None)] + [self._layer(t, None) for t in tail]
        for stage, layers in zip(self.stages, blocks):
            vecs += [self._layer(layer, stage) for layer in layers]
        return _combine(vecs, self.n_add, self.width)

    # -- fast path -----------------------------------------------------------------------------
    def _token_rows(self, tokens: np.ndarray) -> np.ndarray:
        """Token rows (n, D) as int64; OutsideSpaceError naming a token the space lacks."""
        try:
            return token_rows(tokens, self._choices, names=self.space.decision_names,
                              where=f"the {self.space.name}/{self.space.setting} space")
        except ValueError as e:
            raise OutsideSpaceError(str(e)) from None

    def _learn_row(self, row: np.ndarray, combos: list[int]) -> None:
        """Decode one token row and cache the vectors of its blocks and tail."""
        spec = self.space.decode([int(x) for x in row])
        stem, blocks, tail = self._split(spec)
        if self._stem is None:
            self._stem = self._layer(stem, None)
            self._start = (stem.out_channels, stem.out_size)
        cin, size = self._start
        for b, (blk, layers) in enumerate(zip(spec.blocks, blocks)):
            cache = self._blocks[b]
            cache.meta.setdefault(combos[b], (blk.repeats, blk.out_channels, blk.stride))
            vec = _combine([self._layer(x, self.stages[b]) for x in layers], self.n_add, self.width)
            cache.add(int(_code(combos[b], cin, size)), vec)
            if layers:
                cin, size = layers[-1].out_channels, layers[-1].out_size
        self._tail.add(int(_code(0, cin, size)),
                       _combine([self._layer(x, None) for x in tail], self.n_add, self.width))

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Features of token rows (n, D) -> (n, F) float64."""
        t = self._token_rows(tokens)
        n = len(t)
        combos = [t[:, ix] @ r for ix, r in zip(self._decisions, self._radix)]
        # 1. block shapes (repeats, channels, stride) of every combo seen
        if n and (self._stem is None or any(
                int(c) not in cache.meta for cache, col in zip(self._blocks, combos)
                for c in np.unique(col))):
            for i in range(n):
                if any(int(col[i]) not in cache.meta for cache, col in zip(self._blocks, combos)):
                    self._learn_row(t[i], [int(col[i]) for col in combos])
        # 2. propagate input channels and sizes through the blocks, vectorised
        if n == 0:
            return np.zeros((0, self.width))
        cin = np.full(n, self._start[0], dtype=np.int64)
        size = np.full(n, self._start[1], dtype=np.int64)
        codes = []
        for cache, col in zip(self._blocks, combos):
            uniq, inv = np.unique(col, return_inverse=True)
            meta = np.array([cache.meta[int(c)] for c in uniq], dtype=np.int64)[inv]
            codes.append(_code(col, cin, size))
            present = meta[:, 0] > 0
            cin = np.where(present, meta[:, 1], cin)
            size = np.where(present, -(-size // meta[:, 2]), size)
        codes.append(_code(0, cin, size))
        caches = self._blocks + [self._tail]
        # 3. vectors of (combo, input) pairs not seen yet, then gather
        for cache, col in zip(caches, codes):
            _, missing = cache.lookup(col)
            for code in missing:
                if int(code) not in cache.index:
                    i = int(np.flatnonzero(col == code)[0])
                    self._learn_row(t[i], [int(c[i]) for c in combos])
        out = np.zeros((n, self.width))
        out[:, :self.n_add] = self._stem[:self.n_add]
        out[:, self.n_add:] = self._stem[self.n_add:]
        for cache, col in zip(caches, codes):
            cache.freeze()
            rows = cache.vectors[cache.lookup(col)[0]]
            out[:, :self.n_add] += rows[:, :self.n_add]
            np.maximum(out[:, self.n_add:], rows[:, self.n_add:], out=out[:, self.n_add:])
        return out

    def encode(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Token rows of specs; OutsideSpaceError naming the architecture and the reason."""
        rows = []
        for spec in specs:
            try:
                rows.append(self.space.encode(spec))
            except ValueError as e:
                raise OutsideSpaceError(
                    f"architecture {spec.arch_id} is outside the {self.space.name}/"
                    f"{self.space.setting} space: {e}") from None
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(self._choices))

    def from_specs(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Feature rows of architectures (encoded into the space first)."""
        return self.from_tokens(self.encode(specs))


def make_featurizer(space_name: str, setting: str | None = None,
                    table: TableLike | None = None) -> Featurizer:
    """The featurizer of a named space setting, with an optional per-layer table (ms)."""
    return Featurizer(get_space(space_name, setting), table)
