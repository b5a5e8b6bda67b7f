"""Named search spaces. An explicit table, no import-time registration."""

from __future__ import annotations

from mnas_jax.space.base import SearchSpace
from mnas_jax.space.fbnet import FBNetSpace
from mnas_jax.space.mnasnet import MnasNetSpace
from mnas_jax.space.settings import SETTINGS, get_setting
from mnas_jax.space.slices import SEPARATOR, slice_space

SPACES = ("mnasnet", "fbnet")
DEFAULT_SETTINGS = {"mnasnet": "imagenet", "fbnet": "cifar100"}


def space_settings(name: str) -> tuple[str, ...]:
    name = name.split(SEPARATOR, 1)[0]
    if name == "mnasnet":
        return tuple(SETTINGS)
    if name == "fbnet":
        return ("cifar100",)
    raise ValueError(f"unknown search space {name!r}; choose one of {list(SPACES)}")


def get_space(name: str, setting: str | None = None) -> SearchSpace:
    """The search space `name` in `setting` (its default when None); `mnasnet@ITEMS` is a slice
    of the MnasNet space (see mnas_jax.space.slices)."""
    base, sep, items = name.partition(SEPARATOR)
    if sep:
        if base != "mnasnet":
            raise ValueError(f"space {name!r}: slices are defined on the mnasnet space only")
        return slice_space(get_space(base, setting), items)
    allowed = space_settings(name)
    setting = setting or DEFAULT_SETTINGS[name]
    if setting not in allowed:
        raise ValueError(f"space {name!r} has no setting {setting!r}; choose one of {list(allowed)}")
    if name == "mnasnet":
        return MnasNetSpace(get_setting(setting))
    return FBNetSpace()
