"""One resolved layer as a standalone module: what the per-layer lookup table measures.

Searchable layers, the stem and the head conv go through `net.build_layer`, so a one-layer model
runs exactly the module the full network runs (the stem and head are plain conv+BN+act layers,
which `build_layer` builds identically for an `Op.CONV` LayerSpec without SE or shortcut). The
global pool and the classifier, which the network inlines, get the two small modules below.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.net import build_layer
from mnas_jax.space.spec import LayerSpec, Op


class GlobalPool(nn.Module):
    """Global average pool (N, H, W, C) -> (N, C), as in `Net`."""

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return jnp.mean(x, axis=(1, 2))


class Classifier(nn.Module):
    """The classifier on pooled features (N, C) -> (N, classes), as in `Net`."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(self.features, name="classifier")(x)


def build_single_layer(layer: LayerSpec, dw_impl: DepthwiseImpl = DepthwiseImpl.XLA) -> nn.Module:
    """A module computing only `layer`; call it on `single_layer_input_shape(layer)`."""
    if layer.op is Op.POOL:
        return GlobalPool()
    if layer.op is Op.FC:
        return Classifier(layer.out_channels)
    return build_layer(layer, dw_impl, "layer")


def single_layer_input_shape(layer: LayerSpec, batch: int = 1) -> tuple[int, ...]:
    """NHWC input of the layer, or (N, C) for the classifier."""
    if layer.op is Op.FC:
        return (batch, layer.in_channels)
    return (batch, layer.in_size, layer.in_size, layer.in_channels)
