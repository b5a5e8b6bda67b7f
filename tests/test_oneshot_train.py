"""One-shot training of the supernet's shared weights, path by path, on real Fashion-MNIST:
the slices a path gathers are the child's own cut weights, a shared step on a path is the
child's stand-alone layer-wise step and touches nothing off the path, the shared weights learn,
and a path is scored as the stand-alone child with its BN statistics recomputed.

The default tests train two small children only (few stage programs to compile); the slow
ones sample the whole space."""

from __future__ import annotations

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnas_jax.data import load_fashion_mnist
from mnas_jax.models.depthwise import DepthwiseImpl
from mnas_jax.models.stages import stage_padder, stage_tree
from mnas_jax.models.supernet import Supernet
from mnas_jax.models.supernet_child import child_variables
from mnas_jax.models.supernet_layout import encode_path
from mnas_jax.space import get_space
from mnas_jax.train.config import proxy
from mnas_jax.train.evaluate import evaluate, recalibrate_batch_stats
from mnas_jax.train.layerwise import compile_layerwise
from mnas_jax.train.oneshot import evaluate_path
from mnas_jax.train.oneshot_eval import evaluate_child, evaluation_batches
from mnas_jax.train.oneshot_paths import copy_weights, gather_child, supernet_variables
from mnas_jax.train.oneshot_train import (default_layout, init_weights, path_runner, train_step, train_supernet,
                                          uniform_paths)

# B: regular 3x3 convs with pooling/identity shortcuts, a 5x5 separable conv with SE and an
# identity shortcut in block 1, two 5x5 inverted bottlenecks of expansion 3 with SE and no
# shortcut at the narrowest width of block 4. A: B with one more layer in block 3 (a slot B
# lacks; its stage programs are B's, so the tests compile one child's)
_B = [0] * 6 + [1, 1, 1, 1, 2, 0] + [0] * 12 + [2, 1, 1, 2, 0, 0] + [0] * 12
TOKENS = {"B": _B, "A": _B[:23] + [1] + _B[24:]}


@pytest.fixture(scope="module")
def oneshot():
    space = get_space("mnasnet", "fmnist")
    config = proxy()
    layout = default_layout(space, config)
    runner = path_runner(layout, config, DepthwiseImpl.SHIFT)
    children = {k: dataclasses.replace(space.decode(t), input_size=config.input_size) for k, t in TOKENS.items()}
    data = load_fashion_mnist(input_size=config.input_size)
    return space, config, layout, runner, children, data, init_weights(layout, runner.parts, 0)


def _padded_cut(layout, weights, spec, plan):
    """The child's variables cut out of the supernet's (`child_variables`), padded per stage."""
    net = child_variables(layout, supernet_variables(weights), spec)
    out = []
    for stage in plan.stages:
        padder = stage_padder(stage, net)
        trees = {c: stage_tree(net[c], stage) for c in ("params", "batch_stats")}
        out.append(trees if padder is None else {c: padder.pad(c, t) for c, t in trees.items()})
    return out


def test_gathered_stage_variables_are_the_cut_child(oneshot):
    """Every op, kernel, expansion, SE and shortcut of a few sampled children: the padded stage
    variables gathered from the shared weights are the child's cut weights (`child_variables`),
    zero-padded with the gates set, as a stand-alone padded child starts."""
    space, config, layout, runner, children, _, weights = oneshot
    sample = uniform_paths(space, config.input_size)
    specs = [children["B"], *(sample(jax.random.key(i)) for i in range(2))]
    for spec in specs:
        plan = runner.plan(weights, spec)
        got = gather_child(weights, plan)
        for stage, params, stats, want in zip(plan.stages, got.params, got.stats, _padded_cut(layout, weights, spec, plan)):
            for mine, theirs in ((params, want["params"]), (stats, want["batch_stats"])):
                assert jax.tree.structure(mine) == jax.tree.structure(theirs), stage.key
                for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
                    assert a.shape == b.shape and np.array_equal(a, np.asarray(b)), stage.key


def _assert_child_state(layout, weights, spec, state):
    """The child's variables cut out of the shared weights = a stand-alone layer-wise state's."""
    got = child_variables(layout, supernet_variables(weights), spec)
    flat = flax.traverse_util.flatten_dict
    for collection, want in (("params", state.raw_params()), ("batch_stats", state._net("batch_stats", state.stats))):
        mine = flat(got[collection])
        for k, v in flat(want).items():
            np.testing.assert_allclose(mine[k], v, rtol=1e-6, atol=1e-7, err_msg="/".join(k))


def _touched(weights, plan):
    """Per shared array (group, path): a mask of the entries the plan's slices cover."""
    masks = {}
    for s, (_, opt) in zip(plan.slices, plan.opt):
        rows = [("params", leaf) for leaf in s.leaves["params"]] + [("batch_stats", leaf) for leaf in s.leaves["batch_stats"]]
        rows += [(m, leaf) for m, leaf in opt]
        for group, leaf in rows:
            if leaf.source is None:
                continue
            flat = getattr(weights, group) if isinstance(group, str) else weights.moments[group]
            mask = masks.setdefault((group, leaf.source), np.zeros(flat[leaf.source].shape, bool))
            mask[leaf.index] = True
    return masks


def _groups(weights):
    yield from (("params", k, v) for k, v in weights.params.items())
    yield from (("batch_stats", k, v) for k, v in weights.batch_stats.items())
    yield from ((m, k, v) for m, flat in weights.moments.items() for k, v in flat.items())


def test_a_shared_step_is_the_childs_step_and_leaves_the_rest(oneshot):
    """One shared step on B's path = one stand-alone layer-wise step of B from the weights cut
    out of the shared ones (same programs, same batch, key and learning rate); every shared
    entry off the path (other ops, channels beyond B's widths, the outer ring of a 3x3 kernel,
    slots B lacks) is unchanged, in the weights, the BN averages and the optimiser moments."""
    space, config, layout, runner, children, data, initial = oneshot
    spec, weights = children["B"], copy_weights(initial)
    before = copy_weights(weights)
    batch = next(data.train_batches(config.batch_size, seed=0, epoch=0))
    batch = type(batch)(*map(jnp.asarray, batch))
    key = jax.random.key(7)
    weights, metrics = train_step(runner, weights, spec, batch, key, config.learning_rate)
    assert weights.step == 1

    cut = child_variables(layout, supernet_variables(before), spec)
    alone = compile_layerwise(spec, DepthwiseImpl.SHIFT, config, cut, runner.placement, key, 100, 100, runner.cache)
    state, want_metrics = alone.train(alone.make_state(cut), batch, key)
    np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=1e-6)
    _assert_child_state(layout, weights, spec, state)
    touched = _touched(weights, runner.plan(weights, spec))
    after_one = copy_weights(weights)
    # a second step: the optimiser moments went out to the shared arrays and came back
    weights, metrics = train_step(runner, weights, spec, batch, key, config.learning_rate)
    state, want_metrics = alone.train(state, batch, key)
    np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=1e-6)
    _assert_child_state(layout, weights, spec, state)
    weights = after_one

    changed = 0
    for (group, path, new), (_, _, old) in zip(_groups(weights), _groups(before)):
        mask = touched.get((group, path), np.zeros(new.shape, bool))
        assert np.array_equal(new[~mask], old[~mask]), (group, path)
        changed += int(np.sum(new != old))
    assert changed > 100_000  # the path did learn
    assert not np.array_equal(weights.params[("b1", "b1l0", "sep_dw", "kernel")][1:4, 1:4],
                              before.params[("b1", "b1l0", "sep_dw", "kernel")][1:4, 1:4])


@pytest.fixture(scope="module")
def trained(oneshot):
    """30 steps of the shared weights on paths A and B, drawn at random by a `sample_path` hook."""
    space, config, layout, runner, children, data, initial = oneshot

    def sample(key):
        return children["AB"[int(jax.random.bernoulli(key))]]

    return train_supernet(layout, data, config, jax.random.key(1), 30, sample_path=sample, runner=runner,
                          weights=copy_weights(initial), progress=False)


def test_supernet_training_loss_falls(trained):
    assert len(trained.losses) == 30 and trained.weights.step == 30
    assert np.all(np.isfinite(trained.losses))
    assert np.mean(trained.losses[-8:]) < np.mean(trained.losses[:8]) - 0.2, trained.losses
    assert trained.stages_compiled > 0


def test_a_path_is_scored_as_the_recalibrated_child(oneshot, trained):
    """`evaluate_child` on the trained shared weights = the stand-alone child with the cut
    weights, BN statistics recomputed on the same training images; sane accuracy; the shared
    weights are left as they were."""
    space, config, layout, runner, children, data, _ = oneshot
    spec = children["A"]
    cal, val = evaluation_batches(data, runner, 128, 512)
    snapshot = copy_weights(trained.weights)
    acc, loss = evaluate_child(runner, trained.weights, spec, cal, val)
    assert 0.3 < acc <= 1.0 and np.isfinite(loss), (acc, loss)
    for (_, _, a), (_, _, b) in zip(_groups(trained.weights), _groups(snapshot)):
        assert np.array_equal(a, b)

    cut = child_variables(layout, supernet_variables(trained.weights), spec)
    alone = compile_layerwise(spec, DepthwiseImpl.SHIFT, config, cut, runner.placement, jax.random.key(0), 100, 100,
                              runner.cache)
    config_ = dataclasses.replace(config, bn_recalibration_examples=128, val_limit=512)
    variables = recalibrate_batch_stats(alone.batch_stats, cut, data, config_, runner.placement, seed=0)
    want_acc, want_loss = evaluate(alone.evaluate, variables, data, "validation", config_, runner.placement, 512)
    assert acc == pytest.approx(want_acc, abs=1 / 512) and loss == pytest.approx(want_loss, rel=1e-4)


@pytest.mark.slow  # compiles most of the ~340 padded stage programs: ~10-15 min on one core
def test_uniform_supernet_training_runs(oneshot):
    """The default sampler over the whole space (SPOS) runs; the fast sibling samples two
    children. Not asserted: that the loss falls (over 300 uniform steps it rose, 2.35 -> 2.75:
    benchmarks/reports/oneshot_supernet.json; open)."""
    space, config, layout, runner, _, data, initial = oneshot
    run = train_supernet(layout, data, config, jax.random.key(2), 60, sample_path=uniform_paths(space, 16),
                         runner=runner, weights=copy_weights(initial), progress=False)
    assert len(run.losses) == 60 and np.all(np.isfinite(run.losses))


class _Stop(Exception):
    pass


def test_a_stopped_training_resumes_from_its_checkpoint(oneshot, tmp_path):
    """Stopped during step 5 with checkpoints every 2 steps, a run resumed to step 6 holds the
    very weights, BN averages and optimiser moments of a run never stopped: it loses steps 5
    only, repeats none (the path, batch and dropout mask of a step are functions of the key
    and the step)."""
    _, config, layout, runner, children, data, initial = oneshot
    calls, stop = [], []

    def sample(key):
        calls.append(key)
        if len(calls) in stop:
            raise _Stop
        return children["AB"[int(jax.random.bernoulli(key))]]

    run = functools.partial(train_supernet, layout, data, config, jax.random.key(3), 6, sample_path=sample,
                            runner=runner, progress=False)
    whole = run(weights=copy_weights(initial)).weights
    calls.clear()
    stop.append(5)
    with pytest.raises(_Stop):
        run(weights=copy_weights(initial), checkpoint_dir=str(tmp_path), checkpoint_every=2)
    stop.clear()
    resumed = run(weights=copy_weights(initial), checkpoint_dir=str(tmp_path), checkpoint_every=2)
    assert len(resumed.losses) == 2 and resumed.weights.step == 6
    for (group, path, a), (_, _, b) in zip(_groups(resumed.weights), _groups(whole)):
        np.testing.assert_array_equal(a, b, err_msg=f"{group} {path}")


@pytest.mark.slow  # the masked supernet, eagerly: minutes; the fast sibling compares with the stand-alone child
def test_a_path_is_scored_as_by_the_masked_supernet(oneshot, trained):
    """`evaluate_child` (the child's own padded stage programs) = `oneshot.evaluate_path` (the
    masked supernet at full width) on the same shared weights and images."""
    _, _, layout, runner, children, data, _ = oneshot
    spec = children["B"]
    cal, val = evaluation_batches(data, runner, 32, 256)  # one batch each: the same statistics both ways
    acc, loss = evaluate_child(runner, trained.weights, spec, cal, val)
    variables = supernet_variables(trained.weights)
    path = jax.tree.map(jnp.asarray, encode_path(layout, spec))
    sums = evaluate_path(variables["params"], variables["batch_stats"], cal[0].images, val[0].images, val[0].labels,
                         val[0].mask, path, model=Supernet(layout, DepthwiseImpl.SHIFT))
    assert acc == pytest.approx(float(sums["correct"] / sums["count"]), abs=1 / 256)
    assert loss == pytest.approx(float(sums["loss"] / sums["count"]), rel=1e-4)


class _Cache:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def drop_oldest(self, count):
        self.n -= count


def test_a_stage_cache_keeps_within_the_memory_maps(monkeypatch):
    """Stages that hold 500 memory maps each: past 80% of the limit, the oldest are dropped
    until the process holds under 65% (never the current child's); below 80%, none. Every
    stage cache does this after compiling (the process cache of stand-alone children too)."""
    from mnas_jax.train import stage_compile

    cache = _Cache(120)
    monkeypatch.setattr(stage_compile, "memory_maps", lambda: (500 * cache.n, 65_530))
    dropped = stage_compile.keep_within_maps(cache, 20)
    assert 20 <= cache.n and 500 * cache.n <= 0.65 * 65_530 and dropped == 120 - cache.n
    assert stage_compile.keep_within_maps(_Cache(100), 20) == 0
    small = _Cache(120)
    monkeypatch.setattr(stage_compile, "memory_maps", lambda: (10_000 * small.n, 65_530))
    stage_compile.keep_within_maps(small, 20)
    assert small.n == 20
