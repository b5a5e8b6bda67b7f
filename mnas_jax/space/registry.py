"""Named search spaces: an explicit table (no import-time registration); `register_space` adds
one (a plugin, a test), refusing a name that is taken."""

from __future__ import annotations

import dataclasses
from typing import Callable

from mnas_jax.space.base import SearchSpace
from mnas_jax.space.fbnet import FBNetSpace
from mnas_jax.space.mnasnet import MnasNetSpace
from mnas_jax.space.nasbench_macro import NASBenchMacroSpace
from mnas_jax.space.settings import SETTINGS, get_setting
from mnas_jax.space.slices import SEPARATOR, slice_space


@dataclasses.dataclass(frozen=True)
class SpaceEntry:
    """How to make a space in one of its settings."""

    make: Callable[[str], SearchSpace]  # setting name -> the space in that setting
    settings: tuple[str, ...]
    default_setting: str


_REGISTRY: dict[str, SpaceEntry] = {
    "mnasnet": SpaceEntry(lambda s: MnasNetSpace(get_setting(s)), tuple(k for k in SETTINGS if k != "cifar10"),
                          "imagenet"),
    "fbnet": SpaceEntry(lambda s: FBNetSpace(), ("cifar100",), "cifar100"),
    "nasbench-macro": SpaceEntry(lambda s: NASBenchMacroSpace(), ("cifar10",), "cifar10"),
}
SPACES = tuple(_REGISTRY)  # the built-in spaces


def space_names() -> tuple[str, ...]:
    """Every registered space, built-in ones first."""
    return tuple(_REGISTRY)


def register_space(name: str, make: Callable[[str], SearchSpace], settings: tuple[str, ...],
                   default_setting: str | None = None) -> None:
    """Add a space under `name`; ValueError if the name is taken or malformed."""
    if name in _REGISTRY:
        raise ValueError(f"search space {name!r} is registered already; choose another name")
    if not name or SEPARATOR in name or not settings:
        raise ValueError(f"space name {name!r} must be non-empty without {SEPARATOR!r}, with at "
                         "least one setting")
    _REGISTRY[name] = SpaceEntry(make, tuple(settings), default_setting or settings[0])


def unregister_space(name: str) -> None:
    """Remove a space `register_space` added (the built-in ones stay)."""
    if name in SPACES:
        raise ValueError(f"{name!r} is a built-in search space; it cannot be removed")
    _REGISTRY.pop(name, None)


def _entry(name: str) -> SpaceEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; choose one of {list(_REGISTRY)}") from None


def space_settings(name: str) -> tuple[str, ...]:
    """The settings a space (or a slice of it) can be placed in."""
    return _entry(name.split(SEPARATOR, 1)[0]).settings


def get_space(name: str, setting: str | None = None) -> SearchSpace:
    """The search space `name` in `setting` (its default when None); `BASE@ITEMS` is a slice of
    the space BASE (see mnas_jax.space.slices)."""
    base, sep, items = name.partition(SEPARATOR)
    if sep:
        return slice_space(get_space(base, setting), items)
    entry = _entry(name)
    setting = setting or entry.default_setting
    if setting not in entry.settings:
        raise ValueError(f"space {name!r} has no setting {setting!r}; choose one of "
                         f"{list(entry.settings)}")
    return entry.make(setting)
