"""Install extras for accelerator hosts: `.[tpu]` / `.[cuda]` bring the jax build that matches the
pinned jax, `.[tfds]` the TFDS reader; the README shows those commands. (Resolving them was
checked on the CPU machine with `pip install --dry-run -e ".[tpu]"` / `".[cuda]"`; installing
them needs the hardware.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_accelerator_extras_match_the_pinned_jax() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    jax_pin = next(d for d in project["dependencies"] if d.startswith("jax=="))
    version = jax_pin.split("==")[1]
    extras = project["optional-dependencies"]
    assert f"jax[tpu]=={version}" in extras["tpu"] and f"jax[cuda12]=={version}" in extras["cuda"]
    assert any(d.startswith("tensorflow-datasets==") for d in extras["tfds"])
    for name in ("tpu", "cuda", "imagenet", "dev"):  # ImageNet needs the reader; so do the tests
        assert "mnas-jax[tfds]" in extras[name]
    readme = (ROOT / "README.md").read_text()
    for command in ('pip install -e ".[tpu]"', 'pip install -e ".[cuda]"', "Python 3.11"):
        assert command in readme
