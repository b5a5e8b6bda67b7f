"""Analytic parameter counts and multiply-adds, per layer and per architecture.

Counts trainable parameters as frameworks do (conv weights, BN scale and bias, SE and classifier
biases; no BN running statistics). Multiply-adds count convolutions, SE and the classifier, the
usual convention behind the paper's figures (300M for MobileNetV2 at 224).
A leaf: it reads specs only through their fields and imports nothing of the project.
"""

from __future__ import annotations

from typing import Any


def _conv(k: int, cin: int, cout: int, groups: int = 1) -> int:
    return k * k * (cin // groups) * cout


def _se_params(channels: int, reduced: int) -> int:
    return channels * reduced + reduced + reduced * channels + channels


def layer_params(layer: Any) -> int:
    """Trainable parameters of one resolved layer (a `LayerSpec`)."""
    op, k, cin, cout, g = layer.op.value, layer.kernel, layer.in_channels, layer.out_channels, layer.groups
    se = layer.se_channels
    if op == "conv":
        n = _conv(k, cin, cout) + 2 * cout + (_se_params(cout, se) if se else 0)
    elif op == "sepconv":
        n = _conv(k, 1, cin) + 2 * cin + (_se_params(cin, se) if se else 0) + cin * cout + 2 * cout
    elif op in ("mbconv", "ir"):
        mid = layer.mid_channels
        expand = op == "ir" or layer.expansion > 1
        n = (_conv(1, cin, mid, g) + 2 * mid if expand else 0)
        n += _conv(k, 1, mid) + 2 * mid + (_se_params(mid, se) if se else 0)
        n += _conv(1, mid, cout, g) + 2 * cout
    elif op == "skip":
        n = 0 if (layer.stride == 1 and cin == cout) else cin * cout + 2 * cout
    elif op == "pool":
        n = 0
    elif op == "fc":
        n = cin * cout + cout
    else:
        raise ValueError(f"no parameter count for op {op!r}")
    if layer.skip.value == "pool" and cin != cout:
        n += cin * cout + 2 * cout
    return n


def layer_macs(layer: Any) -> int:
    """Multiply-adds of one resolved layer for one image."""
    op, k, cin, cout, g = layer.op.value, layer.kernel, layer.in_channels, layer.out_channels, layer.groups
    hw_in = layer.in_size * layer.in_size
    hw = layer.out_size * layer.out_size
    se = layer.se_channels
    if op == "conv":
        n = hw * _conv(k, cin, cout) + (2 * cout * se if se else 0)
    elif op == "sepconv":
        n = hw * _conv(k, 1, cin) + (2 * cin * se if se else 0) + hw * cin * cout
    elif op in ("mbconv", "ir"):
        mid = layer.mid_channels
        expand = op == "ir" or layer.expansion > 1
        n = hw_in * _conv(1, cin, mid, g) if expand else 0
        n += hw * _conv(k, 1, mid) + (2 * mid * se if se else 0) + hw * _conv(1, mid, cout, g)
    elif op == "skip":
        n = 0 if (layer.stride == 1 and cin == cout) else hw * cin * cout
    elif op == "pool":
        n = 0
    elif op == "fc":
        n = cin * cout
    else:
        raise ValueError(f"no multiply-add count for op {op!r}")
    if layer.skip.value == "pool" and cin != cout:
        n += hw * cin * cout
    return n


def layer_activation_bytes(layer: Any, bytes_per_value: int = 4) -> int:
    """Bytes of the layer's input plus output feature maps (a memory-traffic proxy)."""
    return bytes_per_value * (layer.in_size ** 2 * layer.in_channels
                              + layer.out_size ** 2 * layer.out_channels)


def arch_params(spec: Any) -> int:
    """Number of parameters of the whole architecture (sum over its layers)."""
    return sum(layer_params(layer) for layer in spec.layers())


def arch_macs(spec: Any) -> int:
    """Multiply-accumulates of one forward pass of the architecture (sum over its layers)."""
    return sum(layer_macs(layer) for layer in spec.layers())
