"""A zero-cost score: the gradient norm at initialisation on one batch (Abdelfattah et al. 2021,
"Zero-Cost Proxies for Lightweight NAS"), a free baseline a proxy training must beat.

The score of an architecture is the L2 norm of the gradient of the cross-entropy loss, over
every parameter, of the project's Flax network at its (seeded) initialisation, in training mode
(batch statistics), on the first un-augmented training batch of the setting's data. Scores
are cached per architecture in WORKDIR/zero_cost.json (written after each one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnas_jax.files import write_atomic
from mnas_jax.space import ArchSpec

METHOD = "grad_norm"


def grad_norm(spec: ArchSpec, images: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> float:
    """L2 norm of the loss gradient over all parameters at initialisation, on one batch."""
    import jax
    import jax.numpy as jnp
    import optax

    from mnas_jax.models import build_model, init_variables
    from mnas_jax.train.loop import resolve_dw_impl

    model = build_model(spec, resolve_dw_impl("auto"))
    variables = init_variables(model, (1, *images.shape[1:]), seed=seed)
    params, rest = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def loss(p: Any) -> jax.Array:
        logits, _ = model.apply({"params": p, **rest}, jnp.asarray(images), train=True,
                                mutable=["batch_stats"], rngs={"dropout": jax.random.key(seed)})
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(labels)).mean()

    grads = jax.jit(jax.grad(loss))(params)
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads))))


def first_batch(source: Any, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The first un-augmented training batch of a data source (images, labels)."""
    b = next(iter(source.train_batches(batch, seed=0, epoch=0, augment=False)))
    return np.asarray(b.images), np.asarray(b.labels)


Batch = tuple[np.ndarray, np.ndarray]  # (images, labels)


def cached_scores(specs: Sequence[ArchSpec], cache: str | Path, batch_of: Callable[[ArchSpec], Batch],
                  *, batch: int = 64, seed: int = 0,
                  on_score: Callable[[ArchSpec], None] | None = None) -> dict[str, float]:
    """Scores by arch id, from ``cache`` where it has them (same method, batch and seed),
    computed and written to it otherwise; ``batch_of(spec)`` gives the batch for a spec."""
    cache = Path(cache)
    key = {"method": METHOD, "batch": batch, "seed": seed}
    stored: dict[str, Any] = json.loads(cache.read_text()) if cache.exists() else {}
    scores: dict[str, float] = dict(stored.get("scores", {})) if stored.get("key") == key else {}
    for spec in specs:
        if spec.arch_id not in scores:
            images, labels = batch_of(spec)
            scores[spec.arch_id] = grad_norm(spec, images, labels, seed=seed)
            write_atomic(cache, json.dumps({"key": key, "scores": scores}, indent=1, sort_keys=True))
        if on_score is not None:
            on_score(spec)
    return {s.arch_id: scores[s.arch_id] for s in specs}
