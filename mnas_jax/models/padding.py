"""Channel-padded layers: one program for the layers that differ only in what is cheap to mask.

A layer-wise trainer compiles one set of executables per distinct stage; the MnasNet fmnist
space has ~2,470 of them, so nearly every child meets stages no child before it compiled. A
padded layer is keyed only by what changes its program: channel counts are rounded up to one
of a few widths (`padded_width`), squeeze-and-excite is switched on or off by a gate (a
conditional, so a layer without SE does not compute it), and an identity (or parameter-free pooling) shortcut is switched on or off by a gate
(`layers.gate_param`: a parameter that never learns, so its value is data, not program).

Padding is a numerical no-op for the real channels: the real weights sit in the leading slice of
each padded weight, everything else is zero (BN scales included), so padded channels carry exact
zeros end to end (a zero input, a zero kernel row and a zero BN scale and shift give zero; the
SE scale of a padded channel multiplies a zero), their gradients are exact zeros, and RMSProp,
weight decay and momentum leave a zero weight with a zero gradient at zero. Only the order of
float sums may differ (rounding, ~1e-7 relative).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.layers import GatedResidual, MBConv, RegularConv, Residual, SepConv, Shortcut
from mnas_jax.models.net import ACTIVATIONS
from mnas_jax.space.mnasnet import BASE_CHANNELS, CHANNEL_DIVISOR, FILTER_MULTIPLIERS
from mnas_jax.space.settings import make_divisible
from mnas_jax.space.spec import ArchSpec, LayerSpec, Op, Skip

Path = tuple[str, ...]
_PADDABLE = (Op.CONV, Op.SEPCONV, Op.MBCONV, Op.IR)


#: The widths tensors are padded up to: the widest filter choice of each block of the MnasNet
#: space (MobileNetV2's widths x 1.25, rounded to 4), so a block's three choices share one width.
#: Measured (benchmarks/stage_programs.py): ~1.35x the MACs of a sampled fmnist child where
#: powers of two cost ~1.7x, for about as few programs; a grid of 1.5x steps keeps ~760.
WIDTHS = tuple(sorted({make_divisible(c * max(FILTER_MULTIPLIERS), CHANNEL_DIVISOR) for c in BASE_CHANNELS}))


def padded_width(channels: int) -> int:
    """The channel count a tensor of ``channels`` is padded to: the next of `WIDTHS` (beyond the
    last, the next power of two)."""
    return next((w for w in WIDTHS if w >= channels), 1 << (channels - 1).bit_length())


def can_pad(spec: ArchSpec) -> bool:
    """Whether every searchable layer of ``spec`` has a padded form (not FBNet's skip op, not
    grouped convolutions, whose channel shuffle would mix padded channels into real ones)."""
    layers = spec.layers()
    body = layers[1:-3] if spec.head_channels else layers[1:-2]
    return all(layer.op in _PADDABLE and layer.groups == 1 for layer in body)


@dataclasses.dataclass(frozen=True)
class PaddedLayer:
    """A padded layer: its module, its program key and the values of its gate parameters."""

    module: nn.Module
    key: str
    gates: tuple[tuple[Path, float], ...]


def _se_width(layer: LayerSpec, padded_in: int) -> int:
    ratio = max(layer.se_ratio, 0.25)  # every ratio up to 0.25 shares one width
    return max(1, int(padded_in * ratio))


def padded_layer(layer: LayerSpec, impl: DepthwiseImpl) -> PaddedLayer:
    """The padded form of one searchable layer (input and output padded by `padded_width`)."""
    if layer.op not in _PADDABLE or layer.groups != 1:
        raise ValueError(f"layer {layer.key} has no padded form; see can_pad")
    act = ACTIVATIONS[layer.activation]
    pin, pout = padded_width(layer.in_channels), padded_width(layer.out_channels)
    k, s, se = layer.kernel, layer.stride, _se_width(layer, pin)
    if layer.op is Op.CONV:
        body: nn.Module = RegularConv(pout, k, s, se, act, impl, se_gated=True, parent=None)
    elif layer.op is Op.SEPCONV:
        body = SepConv(pout, k, s, se, act, impl, se_gated=True, parent=None)
    else:
        body = MBConv(pout, k, s, layer.expansion, se, act, always_expand=layer.op is Op.IR, dw_impl=impl,
                      se_gated=True, parent=None)
    gates: list[tuple[Path, float]] = [(("body", "se", "gate"), 1.0 if layer.se_ratio else 0.0)]
    if layer.skip is Skip.POOL and layer.in_channels != layer.out_channels:
        kind = "proj"
        module = Residual(body, pool_shortcut=Shortcut(pout, s, impl, project=True, parent=None))
    elif pin != pout:  # the real channels differ too: no shortcut
        kind, module = "none", Residual(body)
    else:  # identity, a pooling shortcut without projection, or none: one program, a gate
        kind, module = "gated", GatedResidual(body, s)
        gates.append((("gate",), 0.0 if layer.skip is Skip.NONE else 1.0))
    key = (f"{layer.op.value}_k{k}_e{layer.expansion}_se{se}g_{kind}_i{pin}_o{pout}_s{s}_hw{layer.in_size}"
           f"_g{layer.groups}_{layer.activation.value}")
    return PaddedLayer(module, key, tuple(gates))


# -- variables ---------------------------------------------------------------------------------


def _flat(tree: Any) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out[tuple(str(getattr(p, "key", p)) for p in path)] = leaf
    return out


def _nest(flat: dict[Path, Any]) -> dict:
    out: dict = {}
    for path, leaf in flat.items():
        node = out
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = leaf
    return out


def pad_tree(real: dict, padded_shapes: dict, gates: dict[Path, float]) -> dict:
    """``real`` (one collection of a stage's variables) zero-padded to ``padded_shapes``; leaves
    the real layer lacks are zeros, gates take their values."""
    have = _flat(real)
    out = {}
    for path, shape in _flat(padded_shapes).items():
        if path in gates:
            out[path] = jnp.asarray(gates[path], shape.dtype)
        elif path in have:
            leaf = have[path]
            out[path] = jnp.pad(leaf, [(0, p - n) for p, n in zip(shape.shape, np.shape(leaf))])
        else:
            out[path] = jnp.zeros(shape.shape, shape.dtype)
    return _nest(out)


def unpad_tree(padded: dict, real_shapes: dict) -> dict:
    """The inverse of `pad_tree`: the leading slice of each leaf the real layer has."""
    have = _flat(padded)
    return _nest({path: have[path][tuple(slice(0, n) for n in shape.shape)]
                  for path, shape in _flat(real_shapes).items()})
