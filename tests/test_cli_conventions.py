"""Conventions every `mnas` command keeps: help on every option, `--json` on every command,
`--quiet` wherever there is a progress bar, `mnas --version`, one-line errors with an exit
status (2: a bad value, 1: a device, server, timeout or conversion failure) and the traceback
under `--debug`, messages naming only flags that exist. A real server on 127.0.0.1 for the
wrong-token case; the other failures are raised by a stand-in command (say which below)."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from latency.devices.base import DeviceError
from latency.devices.local import LocalDevice
from latency.protocol import MeasurementTimeout
from latency.server import make_server
from mnas_jax.cli import device_cmds
from mnas_jax.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
#: Commands that draw progress bars (on stderr).
WITH_PROGRESS = {"latency measure", "latency build-lut", "predictor fit", "predictor validate",
                 "train", "search"}
#: Flags of other programs that messages and docstrings may name (benchmark_model, bazel, ray;
#: XLA's are recognised by their prefix).
FOREIGN_FLAGS = {"graph", "num_threads", "warmup_runs", "warmup_min_secs", "num_runs",
                 "min_secs", "max_secs", "use_xnnpack", "enable_op_profiling", "head", "config"}
FOREIGN_PREFIXES = ("xla_",)
SOURCES = ("mnas_jax", "latency", "predictor", "calibration")


def commands(parser: argparse.ArgumentParser, prefix: str = ""
             ) -> dict[str, argparse.ArgumentParser]:
    """Every leaf command ('predictor fit', ...) and its parser."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out |= commands(sub, f"{prefix} {name}".strip())
    if not out and prefix:
        out[prefix] = parser
    return out


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction,
                                                             argparse._SubParsersAction))]


def test_every_option_has_help_and_every_command_json():
    parser = build_parser()
    leaves = commands(parser)
    assert {"latency profile", "search", "store export", "predictor predict"} <= set(leaves)
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, p in [("mnas", parser), *leaves.items()] for a in options(p)
               if not (a.help or "").strip()]
    assert not missing, f"options without help: {missing}"
    no_json = [name for name, p in leaves.items()
               if "--json" not in {s for a in options(p) for s in a.option_strings}]
    assert not no_json, f"commands without --json: {no_json}"
    no_quiet = [name for name in WITH_PROGRESS
                if "--quiet" not in {s for a in options(leaves[name]) for s in a.option_strings}]
    assert not no_quiet, f"commands with progress but no --quiet: {no_quiet}"


def test_version():
    done = subprocess.run([sys.executable, "-m", "mnas_jax.cli.main", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and re.fullmatch(r"mnas \S+\n", done.stdout), done


def _string_parts(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def _own_flags(tree: ast.AST) -> set[str]:
    """Flags a module defines itself (``add_argument("--name", ...)``)."""
    return {a.value.lstrip("-") for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute) and n.func.attr == "add_argument"
            for a in n.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
            and a.value.startswith("--")}


def test_messages_name_only_flags_that_exist():
    parser = build_parser()
    known = {s.lstrip("-") for p in [parser, *commands(parser).values()] for a in p._actions
             for s in a.option_strings}
    unknown = {}
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            own = _own_flags(tree)  # a module run with python -m has its own parser
            for text in _string_parts(tree):
                for flag in re.findall(r"(?<![\w-])--([a-z][a-z0-9_=-]*[a-z0-9])", text):
                    name = flag.split("=")[0]
                    if name not in known | own | FOREIGN_FLAGS and not name.startswith(FOREIGN_PREFIXES):
                        unknown.setdefault(flag, str(path.relative_to(ROOT)))
    assert not unknown, f"messages name flags no command has: {unknown}"


# -- errors: one line, exit status, --debug --------------------------------------------------
@pytest.fixture
def failing_info(monkeypatch):
    """`mnas device info` stands in for any command: it raises what the test gives it."""
    def use(error: BaseException) -> None:
        def raise_it(args):
            raise error
        monkeypatch.setattr(device_cmds, "_info", raise_it)
    return use


@pytest.mark.parametrize("error, status", [
    (DeviceError("benchmark_model failed (exit 1):\nERROR: bad\nBenchmarking failed."), 1),
    (MeasurementTimeout("device server http://x timed out: 504"), 1),
    (PermissionError("device server http://x rejected the token (401)"), 1),
    (ValueError("--n -1 must be >= 0"), 2),
    (FileNotFoundError("token file 'x' not found"), 2),
])
def test_errors_are_one_line_and_debug_shows_the_traceback(failing_info, capsys, error, status):
    failing_info(error)
    assert main(["device", "info", "--device", "local"]) == status
    err = capsys.readouterr().err
    assert err.startswith("mnas: error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    with pytest.raises(type(error)):
        main(["--debug", "device", "info", "--device", "local"])


def test_export_error_is_one_line(failing_info, capsys):
    from latency.export import ExportError

    failing_info(ExportError("conversion of mnasnet-a1 produced Flex ops: ['CUSTOM:FlexConv']"))
    assert main(["device", "info", "--device", "local"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_bug_keeps_its_traceback(failing_info):
    failing_info(KeyError("surprise"))
    with pytest.raises(KeyError):
        main(["device", "info", "--device", "local"])


def test_wrong_token_against_a_real_server(monkeypatch, capsys):
    srv = make_server(LocalDevice(), "right-token-0123456789abcdef", port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("MNAS_DEVICE_TOKEN", "wrong-token-0123456789abcdef")
        assert main(["device", "info", "--device", srv.url]) == 1
        err = capsys.readouterr().err
        assert "rejected the token" in err and len(err.strip().splitlines()) == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_progress_bars_draw_on_stderr(capsys):
    """One helper draws every bar (table build, measurements, training) on stderr: stdout stays
    for results; disabled (--quiet) it draws nothing."""
    from mnas_jax.progress import Progress, training_progress

    with Progress("table mnasnet/fmnist", 2) as bar:
        bar.advance()
        bar.advance()
    with Progress("measuring", 2, transient=True) as bar:
        bar.advance("measured a")
        bar.advance("measured b")
    with training_progress("arch0") as on_step:
        on_step(1, 2, None)
        on_step(2, 2, 0.5)
    out, err = capsys.readouterr()
    assert out == "" and "table mnasnet/fmnist" in err and "arch0" in err
    with Progress("quiet", 2, enabled=False) as bar, training_progress("q", enabled=False) as cb:
        bar.advance()
        assert cb is None
    assert capsys.readouterr() == ("", "")


def test_progress_without_a_terminal_comes_as_plain_lines(capsys, monkeypatch):
    """stderr to a file (nohup, a scheduler's log): a live bar would show nothing until the end,
    so a loop prints a line when it starts, at most one per LINE_EVERY_S, and its last state."""
    from mnas_jax import progress

    monkeypatch.setattr(progress, "LINE_EVERY_S", 3600.0)
    with progress.Progress("table", 3) as bar:
        for _ in range(3):
            bar.advance()
    assert capsys.readouterr().err.splitlines() == ["table: 0/3 (0 s)", "table: 3/3 (0 s)"]
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    with progress.training_progress("arch0") as on_step:
        on_step(1, 2, 2.0)
        on_step(2, 2, 1.5)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("arch0: compiling") and "training: 1/2" in lines[1] and "left" in lines[1]
    assert "evaluating: 2/2" in lines[-1] and "loss 1.5000" in lines[-1]
