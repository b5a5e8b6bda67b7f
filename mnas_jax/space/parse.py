"""Resolve what a user typed as an architecture: a reference name, a spec string or a JSON file."""

from __future__ import annotations

import os

from mnas_jax.space.references import reference, reference_names
from mnas_jax.space.spec import ArchSpec


def parse_arch(text: str, setting: str = "imagenet") -> ArchSpec:
    """`text` is a reference name (placed in `setting`), a short spec string, or a JSON file path.

    Spec strings and JSON files carry their own setting; `setting` applies to names only.
    """
    text = text.strip()
    if text in reference_names():
        return reference(text, setting)
    if text.endswith(".json") or os.path.sep in text:
        if not os.path.isfile(text):
            raise FileNotFoundError(f"architecture file {text!r} does not exist")
        with open(text, encoding="utf-8") as f:
            content = f.read()
        try:
            return ArchSpec.from_json(content)
        except ValueError as e:
            raise ValueError(f"{text}: {e}") from None
    if ":" in text:
        return ArchSpec.from_string(text)
    raise ValueError(
        f"cannot read architecture {text!r}: give a reference name ({', '.join(reference_names())}), "
        "a spec string like 'i224x3-c1000-...:mbconv_r2_...', or a path to a JSON file"
    )
