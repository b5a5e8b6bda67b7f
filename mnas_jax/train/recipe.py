"""The training recipe's arithmetic, written once for both trainers.

The whole-network step (`steps`) and the stage-by-stage executables (`stage_compile`) differ
only in what they compile as one program; the loss, the dropout key of a step, the weight
update, the EMA, the evaluation sums and BN's batch statistics are these functions in both.
Each is the exact sequence of operations the trainers used before they shared it, so the
programs they trace are unchanged (the finished proxy-fidelity runs stay valid).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from mnas_jax.models.layers import BN_MOMENTUM
from mnas_jax.train.optim import OptimizerParts


def step_dropout_key(key: jax.Array, step: jax.Array) -> jax.Array:
    """The dropout key of training step ``step``: the same masks whichever trainer runs it."""
    return jax.random.fold_in(key, step)


def smoothed_targets(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
    """One-hot targets with label smoothing."""
    return optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)


def example_count(mask: jax.Array) -> jax.Array:
    """The number of real rows of a batch (at least 1, so an empty batch divides safely)."""
    return jnp.maximum(jnp.sum(mask), 1.0)


def masked_loss(logits: jax.Array, targets: jax.Array, mask: jax.Array, count: jax.Array) -> jax.Array:
    """Mean cross-entropy over the real rows of a batch."""
    return jnp.sum(optax.softmax_cross_entropy(logits, targets) * mask) / count


def correct_count(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    """How many real rows the logits classify right."""
    return jnp.sum((jnp.argmax(logits, -1) == labels) * mask)


def ema_update(average: Any, value: Any, decay: jax.Array) -> Any:
    """``average * decay + value * (1 - decay)`` leaf by leaf (None: no EMA kept)."""
    if average is None:
        return None
    return jax.tree.map(lambda a, v: a * decay + v * (1.0 - decay), average, value)


def rmsprop_update(parts: OptimizerParts, grads: Any, opt: tuple, params: Any,
                   lr: jax.Array) -> tuple[Any, tuple]:
    """`optim.make_optimizer`'s update with the learning rate as an argument: L2 + RMS scaling,
    ``-lr``, momentum (one compiled update serves any schedule)."""
    updates, before = parts.before.update(grads, opt[0], params)
    updates = jax.tree.map(lambda u: -lr * u, updates)
    updates, after = parts.after.update(updates, opt[1])
    return optax.apply_updates(params, updates), (before, after)


def squared_norm(tree: Any) -> jax.Array:
    """The sum of squares of every leaf (a part of the global gradient norm)."""
    return sum((jnp.sum(jnp.square(g)) for g in jax.tree.leaves(tree)), jnp.zeros((), jnp.float32))


def eval_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Sums over the real rows of an evaluation batch: correct predictions, cross-entropy, rows."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"correct": jnp.sum(correct * mask), "loss": jnp.sum(ce * mask), "count": jnp.sum(mask)}


def batch_statistics(updates: Any) -> Any:
    """Each BN layer's batch mean and variance from the moving averages one train-mode forward
    wrote starting from zeros: BN updates ``r <- m r + (1 - m) b``, so from r = 0 it returns
    (1 - m) b."""
    return jax.tree.map(lambda r: r / (1.0 - BN_MOMENTUM), updates)
