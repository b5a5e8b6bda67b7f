"""The network as a pure function of an ArchSpec."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.layers import (
    Act, ConvBN, FBNetSkip, MBConv, RegularConv, Residual, SepConv, Shortcut,
)
from mnas_jax.space.spec import Activation, ArchSpec, LayerSpec, Op, Skip

ACTIVATIONS: dict[Activation, Act] = {Activation.RELU: nn.relu, Activation.RELU6: nn.relu6}


def build_layer(layer: LayerSpec, dw_impl: DepthwiseImpl, name: str) -> nn.Module:
    """The module of one searchable layer, wrapped with its effective shortcut."""
    act = ACTIVATIONS[layer.activation]
    k, s, out, se = layer.kernel, layer.stride, layer.out_channels, layer.se_channels
    if layer.op is Op.CONV:
        body: nn.Module = RegularConv(out, k, s, se, act, dw_impl, parent=None)
    elif layer.op is Op.SEPCONV:
        body = SepConv(out, k, s, se, act, dw_impl, parent=None)
    elif layer.op in (Op.MBCONV, Op.IR):
        body = MBConv(out, k, s, layer.expansion, se, act, layer.groups,
                      always_expand=layer.op is Op.IR, dw_impl=dw_impl, parent=None)
    elif layer.op is Op.SKIP:
        body = FBNetSkip(out, s, act, dw_impl, parent=None)
    else:
        raise ValueError(f"op {layer.op.value!r} is not a searchable layer")
    shortcut = Shortcut(out, s, dw_impl, parent=None) if layer.skip is Skip.POOL else None
    return Residual(body, identity=layer.skip is Skip.IDENTITY, pool_shortcut=shortcut, name=name)


class Net(nn.Module):
    """Stem conv, the spec's layers, head 1x1 conv, global average pool, dropout, classifier."""

    spec: ArchSpec
    dw_impl: DepthwiseImpl = DepthwiseImpl.XLA

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        layers = self.spec.layers()
        act = ACTIVATIONS[self.spec.activation]
        has_head = self.spec.head_channels > 0
        stem, body = layers[0], layers[1:-3] if has_head else layers[1:-2]
        x = ConvBN(stem.out_channels, stem.kernel, stem.stride, act=act, impl=self.dw_impl,
                   name="stem")(x, train)
        for i, layer in enumerate(body):
            x = build_layer(layer, self.dw_impl, f"layer{i}")(x, train)
        if has_head:
            x = ConvBN(self.spec.head_channels, 1, act=act, impl=self.dw_impl, name="head")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.spec.dropout, deterministic=not train)(x)
        x = nn.Dense(self.spec.num_classes, name="classifier")(x)
        return x


def build_model(spec: ArchSpec, dw_impl: DepthwiseImpl = DepthwiseImpl.XLA) -> Net:
    """The Flax network for `spec`, with the given depthwise implementation."""
    return Net(spec, dw_impl)
