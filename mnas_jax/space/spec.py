"""Architecture specs: frozen, hashable dataclasses that are the identity of a model everywhere.

`ArchSpec` describes a whole network (stem, blocks, head); `ArchSpec.layers()` resolves it into
`LayerSpec`s, one per layer with its input shape. The LayerSpec is the lookup-table key
(`LayerSpec.key`), computed in this one place.

Skip semantics (the paper names the skip ops but does not define them when the shape changes):
- `identity`: residual add `x + f(x)` where the layer keeps the shape (stride 1, same channels);
  where the shape changes (the first layer of a block) the layer has no shortcut, as in the
  reference TPU implementation.
- `pool`: a shortcut on every layer. Where the shape is kept it is the identity; where it changes,
  the shortcut average-pools the input with a window equal to the stride and projects channels with
  a 1x1 conv + BN when they differ.
- `none`: no shortcut.
`LayerSpec.skip` holds the *effective* shortcut (identity/pool/none after these rules), so equal
layers have equal keys.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from typing import Any

SCHEMA_VERSION = 1


class Op(str, enum.Enum):
    """Layer operation."""

    CONV = "conv"  # regular KxK conv + BN + act (also stem and head)
    SEPCONV = "sepconv"  # depthwise KxK + BN + act, [SE], pointwise 1x1 + BN
    MBCONV = "mbconv"  # 1x1 expand + BN + act, depthwise + BN + act, [SE], 1x1 project + BN
    IR = "ir"  # FBNet inverted residual: expand always present, optional groups + shuffle
    SKIP = "skip"  # FBNet skip: identity, or 1x1 conv + BN + act when the shape changes
    POOL = "pool"  # global average pool
    FC = "fc"  # classifier


class Skip(str, enum.Enum):
    """A block's shortcut: identity, pool or none (rules in the module docstring)."""

    POOL = "pool"
    IDENTITY = "identity"
    NONE = "none"


class Activation(str, enum.Enum):
    """Activation function of an architecture's layers."""

    RELU = "relu"
    RELU6 = "relu6"


_BLOCK_OPS = (Op.CONV, Op.SEPCONV, Op.MBCONV, Op.IR, Op.SKIP)
_KERNELS = (1, 3, 5, 7)


def _enum(cls: type[enum.Enum], field: str, value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{field}={value!r} is not valid; allowed: {allowed}") from None


def _int(field: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}={value!r} must be an integer")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{field}={value!r} is out of range; allowed: {bound}")
    return value


def _ratio(field: str, value: Any, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field}={value!r} must be a number")
    value = float(value)
    if not (0.0 <= value < hi) or math.isnan(value):
        raise ValueError(f"{field}={value!r} is out of range; allowed: 0 <= {field} < {hi}")
    return value


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A block: `repeats` identical layers; only the first has the stride and channel change."""

    op: Op
    kernel: int
    expansion: int
    se_ratio: float
    skip: Skip
    out_channels: int
    repeats: int
    stride: int
    groups: int = 1

    def __post_init__(self) -> None:
        op = _enum(Op, "op", self.op)
        if op not in _BLOCK_OPS:
            raise ValueError(f"op={op.value!r} cannot be a block; allowed: conv, sepconv, mbconv, ir, skip")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "skip", _enum(Skip, "skip", self.skip))
        if _int("kernel", self.kernel, 1) not in _KERNELS:
            raise ValueError(f"kernel={self.kernel!r} is not valid; allowed: {_KERNELS}")
        _int("expansion", self.expansion, 1, 16)
        object.__setattr__(self, "se_ratio", _ratio("se_ratio", self.se_ratio, 1.0))
        _int("out_channels", self.out_channels, 1, 65536)
        _int("repeats", self.repeats, 0, 64)
        _int("stride", self.stride, 1, 2)
        _int("groups", self.groups, 1, 64)
        if op in (Op.CONV, Op.SEPCONV, Op.SKIP) and self.expansion != 1:
            raise ValueError(f"expansion={self.expansion} is not valid for op={op.value!r}; use 1")
        if op is Op.MBCONV and self.expansion < 2:
            raise ValueError("expansion=1 is not valid for op='mbconv'; use op='sepconv' for e1")
        if op is not Op.IR and self.groups != 1:
            raise ValueError(f"groups={self.groups} is only valid for op='ir'; use 1")
        if op in (Op.IR, Op.SKIP) and self.se_ratio:
            raise ValueError(f"se_ratio={self.se_ratio} is not valid for op={op.value!r}; use 0")
        if op is Op.SKIP and (self.kernel != 1 or self.skip is not Skip.NONE):
            raise ValueError("op='skip' takes kernel=1 and skip='none' (it is itself the shortcut)")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One resolved layer with its input shape: the lookup-table key."""

    op: Op
    kernel: int
    expansion: int
    se_ratio: float
    skip: Skip
    in_channels: int
    out_channels: int
    stride: int
    in_size: int
    groups: int = 1
    activation: Activation = Activation.RELU

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", _enum(Op, "op", self.op))
        object.__setattr__(self, "skip", _enum(Skip, "skip", self.skip))
        object.__setattr__(self, "activation", _enum(Activation, "activation", self.activation))
        object.__setattr__(self, "se_ratio", _ratio("se_ratio", self.se_ratio, 1.0))
        for name in ("kernel", "expansion", "in_channels", "out_channels", "stride", "in_size", "groups"):
            _int(name, getattr(self, name), 1)

    @property
    def out_size(self) -> int:
        """Spatial size of the layer's output (1 after pooling and the classifier)."""
        return 1 if self.op in (Op.POOL, Op.FC) else -(-self.in_size // self.stride)

    @property
    def mid_channels(self) -> int:
        """Channels after the expansion (input channels times expansion)."""
        return self.in_channels * self.expansion

    @property
    def se_channels(self) -> int:
        """SE squeezes to max(1, int(in * ratio)), counted on the layer's input channels."""
        return max(1, int(self.in_channels * self.se_ratio)) if self.se_ratio else 0

    @property
    def key(self) -> str:
        """Canonical lookup-table key (the only place it is computed)."""
        return (
            f"{self.op.value}_k{self.kernel}_e{self.expansion}_se{self.se_ratio!r}_{self.skip.value}"
            f"_i{self.in_channels}_o{self.out_channels}_s{self.stride}_hw{self.in_size}"
            f"_g{self.groups}_{self.activation.value}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The layer as a JSON-ready dict (enums as their string values)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerSpec:
        """Rebuild a layer from `to_dict`'s output."""
        return cls(**d)


def _plain(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def effective_skip(skip: Skip, stride: int, in_channels: int, out_channels: int) -> Skip:
    """The shortcut a layer really gets (see the module docstring)."""
    same_shape = stride == 1 and in_channels == out_channels
    if skip is Skip.NONE:
        return Skip.NONE
    if same_shape:
        return Skip.IDENTITY
    return Skip.POOL if skip is Skip.POOL else Skip.NONE


def block_layers(block: BlockSpec, in_channels: int, in_size: int,
                 activation: Activation) -> tuple[LayerSpec, ...]:
    """The layers of one block: only the first has the stride and the channel change."""
    out = []
    for r in range(block.repeats):
        stride = block.stride if r == 0 else 1
        skip = effective_skip(block.skip, stride, in_channels, block.out_channels)
        layer = LayerSpec(block.op, block.kernel, block.expansion, block.se_ratio, skip,
                          in_channels, block.out_channels, stride, in_size, block.groups, activation)
        out.append(layer)
        in_size, in_channels = layer.out_size, block.out_channels
    return tuple(out)


def tail_layers(in_channels: int, in_size: int, head_channels: int, num_classes: int,
                activation: Activation) -> tuple[LayerSpec, ...]:
    """Optional 1x1 head conv, global average pool, classifier."""
    out = []
    if head_channels:
        out.append(LayerSpec(Op.CONV, 1, 1, 0.0, Skip.NONE, in_channels, head_channels, 1,
                             in_size, 1, activation))
        in_channels = head_channels
    out.append(LayerSpec(Op.POOL, 1, 1, 0.0, Skip.NONE, in_channels, in_channels, 1, in_size, 1,
                         activation))
    out.append(LayerSpec(Op.FC, 1, 1, 0.0, Skip.NONE, in_channels, num_classes, 1, 1, 1,
                         activation))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem conv, blocks, optional 1x1 head conv, global pool, dropout, classifier."""

    blocks: tuple[BlockSpec, ...]
    input_size: int = 224
    input_channels: int = 3
    num_classes: int = 1000
    stem_channels: int = 32
    stem_stride: int = 2
    head_channels: int = 1280  # 0: no head conv
    dropout: float = 0.2
    activation: Activation = Activation.RELU

    def __post_init__(self) -> None:
        blocks = tuple(self.blocks)
        if not blocks or not all(isinstance(b, BlockSpec) for b in blocks):
            raise ValueError("blocks must be a non-empty sequence of BlockSpec")
        object.__setattr__(self, "blocks", blocks)
        _int("input_size", self.input_size, 8, 1024)
        _int("input_channels", self.input_channels, 1, 64)
        _int("num_classes", self.num_classes, 2, 100000)
        _int("stem_channels", self.stem_channels, 1, 65536)
        _int("stem_stride", self.stem_stride, 1, 2)
        _int("head_channels", self.head_channels, 0, 65536)
        object.__setattr__(self, "dropout", _ratio("dropout", self.dropout, 1.0))
        object.__setattr__(self, "activation", _enum(Activation, "activation", self.activation))
        self._check_groups()

    def _check_groups(self) -> None:
        channels = self.stem_channels
        for i, b in enumerate(self.blocks):
            for r in range(b.repeats):
                for c in (channels, channels * b.expansion, b.out_channels):
                    if c % b.groups:
                        raise ValueError(
                            f"block {i}: groups={b.groups} does not divide {c} channels; "
                            "use channel counts divisible by groups"
                        )
                channels = b.out_channels

    # -- resolution ---------------------------------------------------------------------------
    def layers(self) -> tuple[LayerSpec, ...]:
        """Resolve into layers: stem, every block layer, head, pool, classifier."""
        act = self.activation
        stem = LayerSpec(Op.CONV, 3, 1, 0.0, Skip.NONE, self.input_channels, self.stem_channels,
                         self.stem_stride, self.input_size, 1, act)
        out = [stem]
        size, channels = stem.out_size, stem.out_channels
        for b in self.blocks:
            layers = block_layers(b, channels, size, act)
            out += layers
            if layers:
                size, channels = layers[-1].out_size, layers[-1].out_channels
        out += tail_layers(channels, size, self.head_channels, self.num_classes, act)
        return tuple(out)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The architecture as a JSON-ready dict, with the schema version."""
        d = _plain(dataclasses.asdict(self))
        d["schema"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchSpec:
        """Rebuild and validate an architecture from a dict; ValueError naming bad fields."""
        if not isinstance(d, dict):
            raise ValueError(f"an architecture JSON must be an object, got {type(d).__name__}")
        d = dict(d)
        schema = d.pop("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ValueError(f"schema={schema!r} is not supported; this version reads {SCHEMA_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"unknown architecture field(s) {unknown}; allowed: {sorted(fields)}")
        if "blocks" not in d:
            raise ValueError("architecture JSON has no 'blocks'")
        blocks = []
        bfields = {f.name for f in dataclasses.fields(BlockSpec)}
        for i, b in enumerate(d["blocks"]):
            if not isinstance(b, dict) or set(b) - bfields:
                raise ValueError(f"block {i} is not a valid block object; fields: {sorted(bfields)}")
            blocks.append(BlockSpec(**b))
        d["blocks"] = tuple(blocks)
        return cls(**d)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces; its hash is the architecture id."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Parse an architecture from JSON text; ValueError for bad JSON or fields."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid architecture JSON: {e}") from None
        return cls.from_dict(d)

    @property
    def arch_id(self) -> str:
        """Short stable id: the first 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_string(self) -> str:
        """The architecture as a one-line spec string (see `mnas_jax.space.strings`)."""
        from mnas_jax.space.strings import spec_to_string

        return spec_to_string(self)

    @classmethod
    def from_string(cls, text: str) -> ArchSpec:
        """Parse a spec string written by `to_string`."""
        from mnas_jax.space.strings import spec_from_string

        return spec_from_string(text)
