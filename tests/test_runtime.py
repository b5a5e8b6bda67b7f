"""One JAX process setup for the whole project (issue 20, items 3 and 5).

Real components: JAX's persistent compilation cache in a temporary directory, read by a second
real process; the real PPO controller; a real local Ray cluster. SIMULATED: this machine has no
GPU, so "a child that asked for a GPU but got the CPU" is a Ray cluster told it has one GPU
(`num_gpus=1`) whose worker then finds only JAX's CPU backend, which is exactly the failure a
GPU worker with a broken CUDA install shows; and the driver's "never holds an accelerator" is
checked as "its JAX backend and the controller's arrays are the CPU's".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mnas_jax.controller.ppo import PPOConfig, PPOSearcher
from mnas_jax.reward import RewardConfig
from mnas_jax.search.loop import ChildrenFailing, FailFast, LoopConfig, run_loop
from mnas_jax.search.types import ChildResult
from mnas_jax.space import get_space
from mnas_jax.train.compile_cache import cache_dir
from mnas_jax.train.runtime import expected_platform, platform_mismatch
from search_standins import MacsLatency, standin_child

# compiles a small convolutional gradient step (~0.3 s: above the cache's write threshold) and
# prints what the persistent cache did for this process
_CHILD = textwrap.dedent("""
    import json, sys
    from mnas_jax.train.runtime import prepare_process, cache_probe
    prepare_process()
    import jax, jax.numpy as jnp
    from mnas_jax.train.compile_cache import COUNTER

    def loss(w, x):
        for k in w:
            x = jax.nn.relu(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                            dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return jnp.mean(x ** 2)

    w = [jnp.ones((3, 3, 8, 8)) * 0.1 for _ in range(6)]
    x = jnp.ones((4, 16, 16, 8))
    before = COUNTER.snapshot()
    jax.jit(jax.grad(loss)).lower(w, x).compile()
    after = COUNTER.snapshot()
    print(json.dumps({"probe": cache_probe(), "hits": after[0] - before[0],
                      "misses": after[1] - before[1], "backend": jax.default_backend()}))
""")


def _run_child(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return {"stderr": out.stderr, **json.loads(out.stdout.strip().splitlines()[-1])}


def _env(directory) -> dict[str, str]:
    env = dict(os.environ, MNAS_JAX_CACHE_DIR=str(directory), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return env


def test_a_second_process_compiles_from_the_shared_cache(tmp_path) -> None:
    first = _run_child(_env(tmp_path / "xla"))
    second = _run_child(_env(tmp_path / "xla"))
    assert first["probe"] is None and first["misses"] >= 1 and first["hits"] == 0
    assert second["probe"] is True and second["hits"] >= 1 and second["misses"] == 0
    assert any((tmp_path / "xla").iterdir())


def test_a_cache_that_serves_nothing_is_said(tmp_path) -> None:
    """SIMULATED rejection: the entries an earlier process wrote are gone (as when XLA refuses
    them), its probe mark stays: the next process warns in one line, naming the directory."""
    directory = tmp_path / "xla"
    _run_child(_env(directory))
    for entry in directory.iterdir():
        if entry.name != "mnas-cache-probe.json":
            entry.unlink() if entry.is_file() else None
    again = _run_child(_env(directory))
    assert again["probe"] is False
    assert "did not serve an entry" in again["stderr"] and str(directory) in again["stderr"]


def test_cache_directory_is_configurable_and_can_be_switched_off(tmp_path) -> None:
    assert cache_dir({"MNAS_JAX_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({"MNAS_JAX_CACHE_DIR": "off"}) is None
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "mnas-jax" / "xla"


def test_the_controller_runs_on_the_cpu() -> None:
    searcher = PPOSearcher((3, 4, 2), PPOConfig(), seed=0)
    tokens = searcher.ask(4)
    searcher.tell(tokens, np.linspace(0.1, 0.4, 4))
    restored = PPOSearcher.from_bytes(searcher.to_bytes())
    import jax

    for s in (searcher, restored):
        leaves = jax.tree.leaves(s.state.params)
        assert leaves and all(d.platform == "cpu" for leaf in leaves for d in leaf.devices())


def test_a_ray_search_driver_keeps_jax_on_the_cpu(tmp_path) -> None:
    code = textwrap.dedent("""
        import os, jax
        from mnas_jax.train.runtime import driver_only_cpu
        assert driver_only_cpu()
        print(jax.default_backend(), os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"])
    """)
    env = _env(tmp_path / "xla")
    env.pop("JAX_PLATFORMS")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["cpu", "false"]


def test_platform_check_names_what_was_asked_and_what_runs() -> None:
    assert expected_platform({"GPU": 1}) == "gpu" and expected_platform({"TPU": 4}) == "tpu"
    assert expected_platform({"CPU": 2}) == expected_platform(None) == "cpu"
    assert platform_mismatch({"GPU": 1}, "cuda") is None
    assert platform_mismatch({"CPU": 1}, "cpu") is None
    line = platform_mismatch({"GPU": 1}, "cpu")
    assert line is not None and "GPU" in line and "cpu" in line and "\n" not in line


def _ok_child(spec_string: str, seed: int) -> ChildResult:
    from mnas_jax.space import ArchSpec

    return standin_child(ArchSpec.from_string(spec_string), seed)


def test_a_gpu_child_that_gets_the_cpu_fails_in_one_line(monkeypatch) -> None:
    """SIMULATED GPU: Ray is told the node has one; the worker's JAX finds only the CPU."""
    import ray

    from mnas_jax.search.executors import RayExecutor

    here = os.path.dirname(__file__)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    space = get_space("mnasnet", "fmnist")
    spec = space.decode(tuple(0 for _ in space.choices))
    ex = RayExecutor(_ok_child, num_cpus=1, num_gpus=1, resources={"CPU": 1, "GPU": 1})
    try:
        (result,) = ex.evaluate([spec], [0])
    finally:
        ex.shutdown()
    assert not ray.is_initialized()
    assert result.status == "failed" and "asked for GPU" in result.reason
    assert result.extra["platform"] == "cpu"


class _FailingEvaluator:
    def __init__(self, reasons):
        self.reasons, self.calls = list(reasons), 0

    def evaluate(self, specs, seeds, on_result=None):
        out = []
        for i, spec in enumerate(specs):
            reason = self.reasons[min(self.calls, len(self.reasons) - 1)]
            self.calls += 1
            out.append(ChildResult(spec.arch_id, "failed", None, reason, 0.0) if reason
                       else standin_child(spec, 0))
            if on_result is not None:
                on_result(i, out[-1])
        return out


def _loop(tmp_path, evaluator, samples):
    space = get_space("mnasnet", "fmnist")
    run_loop(run_id="f", workdir=tmp_path, space=space,
             config=LoopConfig(steps=2, batch_size=4, screen_factor=None, seed=0),
             reward=RewardConfig.preset("soft", 8.0), searcher=PPOSearcher(space.choices, PPOConfig(), 0),
             searcher_from_bytes=PPOSearcher.from_bytes, estimator=MacsLatency(), evaluator=evaluator,
             calibrator=None, append_sample=samples.append, stored_samples=lambda rid: [])


def test_the_search_stops_when_its_first_children_all_fail_alike(tmp_path) -> None:
    samples: list[dict] = []
    missing = "FileNotFoundError: /data/fmnist/train-images-idx3-ubyte.gz\n  (details)"
    with pytest.raises(ChildrenFailing, match="first 3 children all failed with: FileNotFoundError"):
        _loop(tmp_path / "a", _FailingEvaluator([missing]), samples)
    assert len(samples) == 3 and all(s["status"] == "failed" for s in samples)  # stored, not lost


def test_different_failures_or_a_success_let_the_search_go_on(tmp_path) -> None:
    samples: list[dict] = []
    _loop(tmp_path / "b", _FailingEvaluator(["nan loss", "nan loss", None]), samples)
    assert len(samples) == 8
    samples = []
    _loop(tmp_path / "c", _FailingEvaluator(["nan loss", "out of memory", "nan loss"]), samples)
    assert len(samples) == 8
    guard = FailFast(0)
    for _ in range(5):
        guard.see(ChildResult("x", "failed", None, "same", 0.0))  # k=0: off


def test_stage_by_stage_only_on_one_cpu_device() -> None:
    """layerwise="auto" (the proxy and smoke presets): stage by stage on a CPU with one device,
    one program per network on more devices or an accelerator; False: always one program."""
    from mnas_jax.train.config import TrainConfig, get_preset, trains_stage_by_stage

    assert get_preset("proxy").layerwise == "auto" and get_preset("paper").layerwise is False
    assert trains_stage_by_stage("auto", 1, "cpu") and trains_stage_by_stage(True, 1, "cpu")
    assert not trains_stage_by_stage("auto", 2, "cpu")
    assert not trains_stage_by_stage("auto", 1, "gpu") and not trains_stage_by_stage("auto", 1, "tpu")
    assert not trains_stage_by_stage(False, 1, "cpu")
    with pytest.raises(ValueError, match="layerwise='sometimes'"):
        TrainConfig(layerwise="sometimes")
