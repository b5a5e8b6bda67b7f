"""The short string form of an ArchSpec; round-trips exactly with `ArchSpec`.

    i224x3-c1000-stem32s2-head1280-drop0.2-relu:mbconv_r2_k3_s2_e6_o24_se0.0_g1_identity:...

A header, then one `:`-separated field per block:
`{op}_r{repeats}_k{kernel}_s{stride}_e{expansion}_o{out}_se{ratio}_g{groups}_{skip}`.
"""

from __future__ import annotations

import re

from mnas_jax.space.spec import ArchSpec, BlockSpec

_HEADER = re.compile(
    r"i(?P<input_size>\d+)x(?P<input_channels>\d+)-c(?P<num_classes>\d+)"
    r"-stem(?P<stem_channels>\d+)s(?P<stem_stride>\d+)-head(?P<head_channels>\d+)"
    r"-drop(?P<dropout>[0-9.e-]+)-(?P<activation>[a-z0-9]+)"
)
_BLOCK = re.compile(
    r"(?P<op>[a-z]+)_r(?P<repeats>\d+)_k(?P<kernel>\d+)_s(?P<stride>\d+)_e(?P<expansion>\d+)"
    r"_o(?P<out_channels>\d+)_se(?P<se_ratio>[0-9.e-]+)_g(?P<groups>\d+)_(?P<skip>[a-z]+)"
)
_INTS = ("input_size", "input_channels", "num_classes", "stem_channels", "stem_stride",
         "head_channels", "repeats", "kernel", "stride", "expansion", "out_channels", "groups")


def _fields(m: re.Match[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in m.groupdict().items():
        out[k] = int(v) if k in _INTS else float(v) if k in ("dropout", "se_ratio") else v
    return out


def block_to_string(b: BlockSpec) -> str:
    """One block as its spec-string part, e.g. 'mbconv_r2_k3_s2_e6_o24_se0.25_g1_identity'."""
    return (f"{b.op.value}_r{b.repeats}_k{b.kernel}_s{b.stride}_e{b.expansion}_o{b.out_channels}"
            f"_se{b.se_ratio!r}_g{b.groups}_{b.skip.value}")


def spec_to_string(spec: ArchSpec) -> str:
    """The architecture as a spec string: header (input, classes, stem, head...), ':', blocks."""
    header = (f"i{spec.input_size}x{spec.input_channels}-c{spec.num_classes}"
              f"-stem{spec.stem_channels}s{spec.stem_stride}-head{spec.head_channels}"
              f"-drop{spec.dropout!r}-{spec.activation.value}")
    return ":".join([header, *(block_to_string(b) for b in spec.blocks)])


def spec_from_string(text: str) -> ArchSpec:
    """Parse the short form; a bad part raises ValueError naming it."""
    parts = text.strip().split(":")
    m = _HEADER.fullmatch(parts[0])
    if m is None:
        raise ValueError(
            f"bad architecture header {parts[0]!r}; expected like "
            "'i224x3-c1000-stem32s2-head1280-drop0.2-relu'"
        )
    if len(parts) < 2:
        raise ValueError(f"architecture string {text!r} has no blocks after the header")
    blocks = []
    for i, part in enumerate(parts[1:]):
        bm = _BLOCK.fullmatch(part)
        if bm is None:
            raise ValueError(
                f"bad block {i} {part!r}; expected like 'mbconv_r2_k3_s2_e6_o24_se0.25_g1_identity'"
            )
        try:
            blocks.append(BlockSpec(**_fields(bm)))  # type: ignore[arg-type]
        except ValueError as e:
            raise ValueError(f"block {i} {part!r}: {e}") from None
    return ArchSpec(blocks=tuple(blocks), **_fields(m))  # type: ignore[arg-type]
