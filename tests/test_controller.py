"""The LSTM policy: ranges for ragged choices, consistent log-probs, closed-form distributions."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnas_jax.controller.policy import (
    PolicyConfig,
    check_choices,
    greedy,
    init_policy,
    log_prob_and_entropy,
    sample,
)
from mnas_jax.space import token_rows

RAGGED = (1, 5, 2, 9, 3)
SMALL = PolicyConfig(hidden=16, embed_dim=8)


def _with_heads(params, bias: np.ndarray):
    """Zero head kernels and the given biases: logits of decision t are exactly bias[t]."""
    inner = dict(params["params"])
    inner["head_kernel"] = jnp.zeros_like(inner["head_kernel"])
    inner["head_bias"] = jnp.asarray(bias, jnp.float32)
    return {"params": inner}


def test_sampled_tokens_cover_exactly_each_decisions_range() -> None:
    params = init_policy(jax.random.PRNGKey(0), RAGGED, SMALL)
    tokens, log_probs = sample(params, jax.random.PRNGKey(1), 2000, RAGGED, SMALL)
    tokens = np.asarray(tokens)
    assert tokens.shape == (2000, len(RAGGED)) and tokens.dtype == np.int32
    assert log_probs.shape == (2000,)
    for d, c in enumerate(RAGGED):
        assert set(np.unique(tokens[:, d])) == set(range(c))  # all options, none of the padding


def test_log_prob_of_sampled_tokens_matches_sampling() -> None:
    params = init_policy(jax.random.PRNGKey(2), RAGGED, SMALL)
    tokens, log_probs = sample(params, jax.random.PRNGKey(3), 64, RAGGED, SMALL)
    teacher, entropy = log_prob_and_entropy(params, tokens, RAGGED, SMALL)
    np.testing.assert_allclose(np.asarray(teacher), np.asarray(log_probs), atol=1e-5)
    assert np.all(np.asarray(entropy) > 0)


def test_sequence_probabilities_sum_to_one() -> None:
    choices = (2, 3, 1, 2)
    params = init_policy(jax.random.PRNGKey(4), choices, SMALL)
    every = np.array(list(itertools.product(*[range(c) for c in choices])), dtype=np.int32)
    log_p, _ = log_prob_and_entropy(params, every, choices, SMALL)
    assert float(jnp.sum(jnp.exp(log_p))) == pytest.approx(1.0, abs=1e-5)


def test_zero_heads_give_the_uniform_policy() -> None:
    params = _with_heads(init_policy(jax.random.PRNGKey(5), RAGGED, SMALL), np.zeros((5, 9)))
    tokens, log_probs = sample(params, jax.random.PRNGKey(6), 8, RAGGED, SMALL)
    _, entropy = log_prob_and_entropy(params, tokens, RAGGED, SMALL)
    uniform = float(np.sum(np.log(RAGGED)))
    np.testing.assert_allclose(np.asarray(log_probs), -uniform, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(entropy), uniform, rtol=1e-6)


def test_temperature_and_tanh_clipping_in_closed_form() -> None:
    choices = (3,)
    bias = np.array([[4.0, 0.0, 0.0]])
    tokens = np.array([[0]], dtype=np.int32)
    cfg = PolicyConfig(hidden=16, embed_dim=8, temperature=2.0, tanh_constant=None)
    params = _with_heads(init_policy(jax.random.PRNGKey(7), choices, cfg), bias)
    log_p, _ = log_prob_and_entropy(params, tokens, choices, cfg)
    assert float(log_p[0]) == pytest.approx(2.0 - np.log(np.exp(2.0) + 2), rel=1e-5)
    cfg = PolicyConfig(hidden=16, embed_dim=8, tanh_constant=2.5)
    log_p, _ = log_prob_and_entropy(params, tokens, choices, cfg)
    top = 2.5 * np.tanh(4.0)
    assert float(log_p[0]) == pytest.approx(top - np.log(np.exp(top) + 2), rel=1e-5)


def test_greedy_follows_the_largest_logit() -> None:
    choices = (2, 3, 4)
    bias = np.array([[0, 3, 0, 0], [5, 0, 0, 0], [0, 0, 0, 2]], dtype=np.float32)
    params = _with_heads(init_policy(jax.random.PRNGKey(8), choices, SMALL), bias)
    tokens, log_p = greedy(params, choices, SMALL)
    assert np.asarray(tokens).tolist() == [1, 0, 3]
    teacher, _ = log_prob_and_entropy(params, np.asarray(tokens)[None], choices, SMALL)
    assert float(log_p) == pytest.approx(float(teacher[0]), abs=1e-5)


def test_sampling_is_deterministic_in_the_key() -> None:
    params = init_policy(jax.random.PRNGKey(9), RAGGED, SMALL)
    a, _ = sample(params, jax.random.PRNGKey(10), 16, RAGGED, SMALL)
    b, _ = sample(params, jax.random.PRNGKey(10), 16, RAGGED, SMALL)
    c, _ = sample(params, jax.random.PRNGKey(11), 16, RAGGED, SMALL)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_validation_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match="empty"):
        check_choices(())
    with pytest.raises(ValueError, match=r"choices\[1\] = 0"):
        check_choices((2, 0))
    with pytest.raises(ValueError, match="temperature"):
        PolicyConfig(temperature=0.0)
    with pytest.raises(ValueError, match="hidden"):
        PolicyConfig(hidden=0)
    with pytest.raises(ValueError, match=r"token 2 at row 0, decision 0"):
        token_rows(np.array([[2, 0]]), (2, 2), min_rows=1)
    with pytest.raises(ValueError, match="shape"):
        token_rows(np.array([0, 0]), (2, 2), min_rows=1)
    with pytest.raises(ValueError, match=r"n >= 1"):
        token_rows(np.zeros((0, 2), dtype=int), (2, 2), min_rows=1)
    params = init_policy(jax.random.PRNGKey(0), (2, 2), SMALL)
    with pytest.raises(ValueError, match="positive int"):
        sample(params, jax.random.PRNGKey(0), 0, (2, 2), SMALL)
