"""A child's own variables cut out of the supernet's: `Net(spec)` then computes what the
supernet computes on the child's path (export, stand-alone fine-tuning, and the test that the
supernet's arithmetic is the child's)."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.net import build_layer, build_model
from mnas_jax.models.supernet_layout import KERNEL, SupernetLayout, body_layers, layer_slots
from mnas_jax.space.spec import ArchSpec, LayerSpec, Op

# the child's module names inside a layer body -> the supernet's, per op
_BODY: dict[Op, dict[str, str]] = {
    Op.CONV: {"conv_bn": "conv", "se": "conv_se"},
    Op.SEPCONV: {"dw": "sep_dw", "se": "sep_se", "pw": "sep_pw"},
    Op.MBCONV: {"expand": "mb_expand", "dw": "mb_dw", "se": "mb_se", "project": "mb_project"},
}
_INNER = ("conv", "dw")  # a ConvBN's / DepthwiseBN's inner conv module: its kernel sits one up


def _strip_inner(rest: tuple[str, ...]) -> tuple[str, ...]:
    return rest[1:] if len(rest) == 2 and rest[0] in _INNER and rest[1] == "kernel" else rest


def source_key(key: tuple[str, ...], layer_map: dict[str, tuple[str, str, Op]]) -> tuple[str, ...]:
    """The supernet variable a child variable is cut from (key without the collection);
    ``layer_map``: the child's layer name -> (block name, slot name, op)."""
    top, rest = key[0], key[1:]
    if top in ("stem", "head"):
        return (top, *_strip_inner(rest))
    if top == "classifier":
        return key
    block, slot, op = layer_map[top]
    if rest[0] == "pool_shortcut":  # ('pool_shortcut', 'proj', ...)
        return (block, slot, "proj", *_strip_inner(rest[2:]))
    module = _BODY[op][rest[1]]
    return (block, slot, module, *_strip_inner(rest[2:]))


def cut_index(source_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Where a child variable of `shape` sits in its supernet variable of `source_shape`: the
    leading part; a conv kernel's spatial dims from the centre."""
    index = []
    for dim, (have, want) in enumerate(zip(source_shape, shape)):
        if len(source_shape) == 4 and dim < 2 and have == KERNEL and want < KERNEL:
            lo = (have - want) // 2
            index.append(slice(lo, lo + want))
        else:
            index.append(slice(0, want))
    return tuple(index)


def _cut(source: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return source[cut_index(source.shape, shape)]


def child_variables(layout: SupernetLayout, variables: dict[str, Any], spec: ArchSpec) -> dict[str, Any]:
    """`Net(spec)`'s variables (params and batch_stats) cut out of the supernet's `variables`."""
    model = build_model(spec)
    x = jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, spec.input_channels), jnp.float32)
    shapes = jax.eval_shape(lambda v: model.init(jax.random.key(0), v), x)
    layer_map = {f"layer{i}": (f"b{slot.block}", slot.name, layer.op)
                 for i, (slot, layer) in enumerate(zip(layer_slots(layout, spec), body_layers(spec)))}
    flat_src = {k: np.asarray(v) for k, v in flax.traverse_util.flatten_dict(variables).items()}
    out = {}
    for key, leaf in flax.traverse_util.flatten_dict(shapes).items():
        src = (key[0], *source_key(key[1:], layer_map))
        if src not in flat_src:
            raise KeyError(f"supernet has no variable {'/'.join(src)} for the child's {'/'.join(key)}")
        out[key] = jnp.asarray(_cut(flat_src[src], tuple(leaf.shape)))
    return flax.traverse_util.unflatten_dict(out)


def layer_variables(slot_variables: dict[str, Any], layer: LayerSpec) -> dict[str, Any]:
    """The variables of `layer` alone (`net.build_layer`'s module) cut out of its slot's."""
    module = build_layer(layer, DepthwiseImpl.XLA, None)
    x = jax.ShapeDtypeStruct((1, layer.in_size, layer.in_size, layer.in_channels), jnp.float32)
    shapes = jax.eval_shape(lambda v: module.init(jax.random.key(0), v, False), x)
    flat_src = {k: np.asarray(v) for k, v in flax.traverse_util.flatten_dict(slot_variables).items()}
    out = {}
    for key, leaf in flax.traverse_util.flatten_dict(shapes).items():
        src = (key[0], *source_key(("layer", *key[1:]), {"layer": ("", "", layer.op)})[2:])
        out[key] = jnp.asarray(_cut(flat_src[src], tuple(leaf.shape)))
    return flax.traverse_util.unflatten_dict(out)
