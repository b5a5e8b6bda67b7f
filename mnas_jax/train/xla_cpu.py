"""XLA:CPU settings for child training, applied once per process before JAX starts its backend.

``--xla_cpu_use_fusion_emitters=false`` keeps XLA:CPU's older elemental emitters for fusions:
on this project's 2-core machine both trainers compile faster with them and the whole-network
step also runs faster (numbers: benchmarks/reports/measured_earlier.md). Same
arithmetic up to float rounding (tests compare both trainers under one setting).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

CPU_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)


def configure_xla_cpu(environ: MutableMapping[str, str] | None = None) -> bool:
    """Add CPU_FLAGS to XLA_FLAGS unless the user set those flags; False once JAX's backend runs
    (too late to change; nothing is touched then)."""
    import jax._src.xla_bridge as xb

    env = os.environ if environ is None else environ
    if environ is None and xb.backends_are_initialized():
        return False
    flags = env.get("XLA_FLAGS", "")
    extra = [f for f in CPU_FLAGS if f.split("=")[0] not in flags]
    if extra:
        env["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
    return True
