"""Ray children request configurable resources and see only what they were given.

A real local Ray cluster declares 2 GPUs (Ray accepts declared GPUs on a machine without any: it
then hands out ids "0" and "1" and sets CUDA_VISIBLE_DEVICES as on a GPU host; no GPU is used)
and a custom resource `accel` of 2. The concurrency checks use a stand-in child (it records when
it ran and what it was given, and waits until a second child has started, so that the limit and
not chance decides how many run at once); one real child trains through the real path
(`train_child` on Fashion-MNIST, a tiny net, a few steps) holding a declared GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path

import pytest

from mnas_jax.search.children import train_child
from mnas_jax.search.config import SearchConfig
from mnas_jax.search.executors import RayExecutor, remote_options
from mnas_jax.search.types import ChildResult
from mnas_jax.space import ArchSpec, BlockSpec, get_space, sample_tokens

ray = pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
TINY = ArchSpec(  # a tiny fmnist net: compiles in seconds
    blocks=(BlockSpec("mbconv", 3, 3, 0.25, "identity", 8, 2, 2), BlockSpec("sepconv", 5, 1, 0.0, "none", 16, 1, 2)),
    input_size=32, input_channels=1, num_classes=10, stem_channels=8, stem_stride=1, head_channels=32,
)


def recording_child(rendezvous: str, spec_string: str, seed: int) -> ChildResult:
    """Stand-in child: waits (up to 20 s) until 2 children have started, then reports."""
    start = time.time()
    Path(rendezvous, f"{seed}").touch()
    while len(os.listdir(rendezvous)) < 2 and time.time() - start < 20:
        time.sleep(0.05)
    time.sleep(0.5)
    return ChildResult(ArchSpec.from_string(spec_string).arch_id, "ok", 0.5, None, 0.0,
                       {"start": start, "end": time.time(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                        "cores": sorted(os.sched_getaffinity(0))})


def _max_overlap(results: list[ChildResult]) -> int:
    events = sorted([(r.extra["start"], 1) for r in results] + [(r.extra["end"], -1) for r in results])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _specs(n: int, setting: str = "fmnist") -> list[ArchSpec]:
    space = get_space("mnasnet", setting)
    return [space.decode(t) for t in sample_tokens(space.choices, 3, n)]


@pytest.fixture(scope="module")
def cluster():
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), saved or ""])  # workers import us
    ray.init(num_cpus=4, num_gpus=2, resources={"accel": 2}, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved


def _run(resources: dict, tmp_path: Path, n: int = 4, **kwargs) -> list[ChildResult]:
    rendezvous = tmp_path / "started"
    rendezvous.mkdir()
    # SIMULATED GPUs (declared to Ray, absent): the children's platform check is off
    ex = RayExecutor(functools.partial(recording_child, str(rendezvous)), resources=resources,
                     check_platform=False, **kwargs)
    return ex.evaluate(_specs(n), list(range(n)))


def test_gpu_children_run_two_at_a_time_each_on_its_own_gpu(cluster, tmp_path: Path) -> None:
    results = _run({"CPU": 0.5, "GPU": 1}, tmp_path)  # CPUs would allow 8 at once
    assert all(r.status == "ok" for r in results)
    assert _max_overlap(results) == 2
    for r in results:
        ids = r.extra["accelerator_ids"]["GPU"]
        assert len(ids) == 1 and ids[0] in ("0", "1")
        assert r.extra["cuda"] == ids[0]  # the child sees only the GPU it was given
        assert r.extra["resources"]["GPU"] == 1.0
    for a in results:  # children running at the same time hold different GPUs
        for b in results:
            overlap = a.extra["start"] < b.extra["end"] and b.extra["start"] < a.extra["end"]
            if a is not b and overlap:
                assert a.extra["accelerator_ids"] != b.extra["accelerator_ids"]


def test_custom_resource_limits_concurrency(cluster, tmp_path: Path) -> None:
    results = _run({"CPU": 0.5, "accel": 1}, tmp_path)
    assert _max_overlap(results) == 2
    assert all(r.extra["resources"].get("accel") == 1.0 for r in results)
    assert all("GPU" not in r.extra["accelerator_ids"] for r in results)


def test_cpu_pinning_only_on_the_driver_machine(cluster, tmp_path: Path) -> None:
    core = sorted(os.sched_getaffinity(0))[0]
    results = _run({"CPU": 1}, tmp_path, n=2, train_cores={core})
    assert all(r.extra["cores"] == [core] for r in results)  # a worker beside the driver: pinned
    rendezvous = tmp_path / "elsewhere"
    rendezvous.mkdir()
    ex = RayExecutor(functools.partial(recording_child, str(rendezvous)), resources={"CPU": 1}, train_cores={core})
    ex.driver_node = "another-machine"  # as if the workers ran on another node
    results = ex.evaluate(_specs(2), [0, 1])
    assert all(len(r.extra["cores"]) == len(os.sched_getaffinity(0)) for r in results)


@pytest.mark.slow
def test_a_real_child_trains_holding_a_gpu(cluster) -> None:
    """Slow (33 s beside other tests): a real Flax child through Ray holding a declared GPU; the
    default suite checks the placement with stand-in children (above) and a real child through
    Ray without accelerators (tests/test_executors.py)."""
    from mnas_jax.data.fashion_mnist import resolve_dir

    if not (resolve_dir() / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed")
    fn = functools.partial(train_child, preset="smoke", overrides=(("max_steps", 2), ("bn_recalibration_examples", 0)),
                           data="fmnist")
    result = RayExecutor(fn, resources={"CPU": 1, "GPU": 1}, check_platform=False).evaluate([TINY], [0])[0]
    assert result.status == "ok", result.reason
    assert 0.0 <= result.accuracy <= 1.0 and result.extra["steps"] == 2
    assert result.extra["accelerator_ids"]["GPU"][0] in ("0", "1")


def test_resource_requests_become_ray_options() -> None:
    assert remote_options({"CPU": 1}) == {"num_cpus": 1.0, "max_retries": 0}
    gpu = remote_options({"CPU": 8, "GPU": 1})
    assert gpu["num_gpus"] == 1.0 and gpu["num_cpus"] == 8.0 and gpu["max_calls"] == 1
    tpu = remote_options({"TPU": 4})
    assert tpu["resources"] == {"TPU": 4.0} and tpu["num_cpus"] == 0.0 and tpu["max_calls"] == 1
    with pytest.raises(ValueError, match="child resource 'GPU'"):
        remote_options({"GPU": -1})
    with pytest.raises(ValueError, match="child resource"):
        SearchConfig(child_resources={"GPU": "one"})
    assert dataclasses.replace(SearchConfig(), child_resources={"TPU": 4}).child_resources == {"TPU": 4}
