"""Search spaces and architecture specs: the data everything else is a function of.

A leaf of the layering: imports nothing else of the project.
"""

from mnas_jax.space.base import SearchSpace, sample_tokens, space_size
from mnas_jax.space.fbnet import FBNetSpace
from mnas_jax.space.mnasnet import MnasNetSpace
from mnas_jax.space.parse import parse_arch
from mnas_jax.space.references import reference, reference_names
from mnas_jax.space.registry import SPACES, get_space, space_settings
from mnas_jax.space.settings import SETTINGS, Setting, get_setting
from mnas_jax.space.base import SpaceDefaults
from mnas_jax.space.registry import register_space, space_names, unregister_space
from mnas_jax.space.sampling import sample_specs
from mnas_jax.space.slices import narrower_space
from mnas_jax.space.spec import (
    Activation,
    ArchSpec,
    BlockSpec,
    LayerSpec,
    Op,
    Skip,
    effective_skip,
)
from mnas_jax.space.tokens import token_row, token_rows

__all__ = [
    "Activation", "ArchSpec", "BlockSpec", "FBNetSpace", "LayerSpec", "MnasNetSpace", "Op",
    "SETTINGS", "SPACES", "SearchSpace", "Setting", "Skip", "effective_skip", "get_setting",
    "get_space", "parse_arch", "reference", "reference_names", "sample_tokens", "space_settings",
    "space_size", "token_row", "token_rows",
    "SpaceDefaults", "narrower_space", "register_space", "sample_specs", "space_names",
    "unregister_space",
]
