"""Closed-form checks of the MnasNet reward and the target parser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnas_jax.reward import PRESETS, RewardConfig, Target, reward


def test_presets_are_the_papers() -> None:
    assert PRESETS["soft"] == (-0.07, -0.07)
    assert PRESETS["hard"] == (0.0, -1.0)


@pytest.mark.parametrize("preset", ["soft", "hard"])
def test_reward_equals_accuracy_at_the_target(preset: str) -> None:
    cfg = RewardConfig.preset(preset, target=75.0)
    assert cfg(0.73, 75.0) == pytest.approx(0.73)


def test_soft_twice_the_target_costs_about_five_percent() -> None:
    cfg = RewardConfig.preset("soft", 75.0)
    assert cfg(0.8, 150.0) == pytest.approx(0.8 * 2**-0.07)
    assert cfg(0.8, 37.5) == pytest.approx(0.8 * 0.5**-0.07)  # faster than T: a small bonus
    assert 1 / 2**-0.07 == pytest.approx(1.05, abs=0.002)


def test_hard_rewards_accuracy_below_target_and_divides_above() -> None:
    cfg = RewardConfig.preset("hard", 10.0)
    assert cfg(0.6, 4.0) == pytest.approx(0.6)
    assert cfg(0.6, 25.0) == pytest.approx(0.6 * 10.0 / 25.0)


def test_reward_is_vectorised_over_numpy_and_jax() -> None:
    acc = np.array([0.5, 0.7, 0.9, 0.8])
    lat = np.array([5.0, 10.0, 20.0, 40.0])
    expected = np.array([0.5, 0.7, 0.9 * 0.5, 0.8 * 0.25])
    np.testing.assert_allclose(reward(acc, lat, 10.0, 0.0, -1.0), expected)
    jitted = jax.jit(lambda a, l: reward(a, l, 10.0, 0.0, -1.0))
    out = jitted(jnp.asarray(acc), jnp.asarray(lat))
    assert isinstance(out, jax.Array)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)


def test_reward_rejects_non_positive_latency_and_target() -> None:
    with pytest.raises(ValueError, match="latency"):
        reward(0.5, 0.0, 10.0, -0.07, -0.07)
    with pytest.raises(ValueError, match="target"):
        reward(0.5, 3.0, -1.0, -0.07, -0.07)
    with pytest.raises(ValueError, match="target"):
        RewardConfig(target=0.0, alpha=0.0, beta=-1.0)
    with pytest.raises(ValueError, match="'medium'"):
        RewardConfig.preset("medium", 10.0)


@pytest.mark.parametrize(
    "text, value, unit, ref",
    [
        ("75ms", 75.0, "ms", None),
        ("75", 75.0, "ms", None),
        (" 4.5 ms ", 4.5, "ms", None),
        ("1.0x mobilenetv2", 1.0, "x", "mobilenetv2"),
        ("0.8x MobileNetV2", 0.8, "x", "mobilenetv2"),
    ],
)
def test_target_parses_accepted_forms(text: str, value: float, unit: str, ref: str | None) -> None:
    t = Target.parse(text)
    assert (t.value, t.unit, t.reference_name) == (value, unit, ref)
    assert Target.parse(str(t)) == t


def test_target_is_relative() -> None:
    assert Target.parse("1.5x mobilenetv2").is_relative
    assert not Target.parse("75ms").is_relative and not Target.parse(12).is_relative


@pytest.mark.parametrize("bad", ["fast", "-3ms", "1.0x", "x mobilenetv2", "", "75 s", "0ms"])
def test_target_rejects_bad_strings_naming_value_and_forms(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        Target.parse(bad)
    message = str(err.value)
    if bad != "0ms":  # 0 parses as a number and fails the > 0 check instead
        assert repr(bad) in message and "ms" in message and "x <reference model>" in message
