"""Flax models: pure functions of an ArchSpec. A leaf: imports only mnas_jax.space."""

from mnas_jax.models.depthwise import DepthwiseConv, DepthwiseImpl, depthwise_conv
from mnas_jax.models.init import init_variables
from mnas_jax.models.net import Net, build_layer, build_model

__all__ = ["DepthwiseConv", "DepthwiseImpl", "Net", "build_layer", "build_model", "depthwise_conv",
           "init_variables"]
