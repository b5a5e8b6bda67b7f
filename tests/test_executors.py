"""Executors: the local one and a real local Ray cluster with 2 workers give the same results
under the same contract (order, on_result, failures as data)."""

from mnas_jax.search.executors import LocalExecutor, RayExecutor
from mnas_jax.space import get_space, sample_tokens
from search_standins import standin_child


def _specs(n):
    space = get_space("mnasnet", "fmnist")
    return [space.decode(t) for t in sample_tokens(space.choices, 5, n)]


def _child(spec_string, seed):
    from mnas_jax.space import ArchSpec

    spec = ArchSpec.from_string(spec_string)
    if seed == 13:
        raise FloatingPointError("loss became nan")
    return standin_child(spec, seed)


def test_local_executor_contract():
    specs = _specs(3)
    seen = []
    out = LocalExecutor(_child).evaluate(specs, [1, 13, 2], lambda i, r: seen.append(i))
    assert [r.arch_id for r in out] == [s.arch_id for s in specs]
    assert out[1].status == "failed" and "nan" in out[1].reason
    assert seen == [0, 1, 2]


def test_ray_executor_matches_local(monkeypatch):
    import os

    import ray

    # workers are new processes: they find this test module through PYTHONPATH
    here = os.path.dirname(__file__)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    specs = _specs(4)
    seeds = [1, 2, 13, 4]
    local = LocalExecutor(_child).evaluate(specs, seeds)
    ex = RayExecutor(_child, num_cpus=2)
    try:
        seen = []
        remote = ex.evaluate(specs, seeds, lambda i, r: seen.append(i))
    finally:
        ex.shutdown()
    strip = lambda rs: [(r.arch_id, r.status, r.accuracy, r.reason) for r in rs]  # noqa: E731
    assert strip(remote) == strip(local)
    assert sorted(seen) == [0, 1, 2, 3]
    assert not ray.is_initialized()
