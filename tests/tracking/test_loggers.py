"""``AutoWandbLogger``: offline without a login, online with one, the key never written, and
quiet on the console (W&B's end-of-run blocks kept in the run's files) unless asked."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import wandb
from fit_helpers import CONF, REPO, command_line, fit_args, offline_runs, wandb_records

from asc_kd.fit import main
from asc_kd.recipes import RECIPES
from asc_kd.tracking.loggers import AutoWandbLogger, wandb_logged_in

#: Shaped like a real key (40 hex digits) so nothing rejects it before it could leak.
FAKE_KEY = "0123456789abcdef" + "fa4e" * 6


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No login anywhere: no key in the environment, no WANDB_MODE, an empty HOME (~/.netrc)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return home


def _netrc(home: Path, machine: str) -> None:
    path = home / ".netrc"
    path.write_text(f"machine {machine}\n  login user\n  password {FAKE_KEY}\n")
    path.chmod(0o600)  # netrc refuses files others can read


def _offline(save_dir: Path, **kwargs: object) -> bool:
    logger = AutoWandbLogger(save_dir=str(save_dir), **kwargs)
    assert logger._experiment is None and wandb.run is None  # nothing started yet
    return logger._offline


def test_no_login_means_offline(home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert not wandb_logged_in()
    with caplog.at_level(logging.WARNING, logger="asc_kd.tracking.loggers"):
        assert _offline(tmp_path / "runs")
    assert f"wandb sync {tmp_path / 'runs'}/wandb/offline-run-*" in caplog.text
    assert not (tmp_path / "runs").exists()  # made when the run starts: a refused fit leaves none


def test_wandb_mode_offline_wins_over_a_key(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    for mode in ("offline", "dryrun"):
        monkeypatch.setenv("WANDB_MODE", mode)
        assert wandb_logged_in()
        assert _offline(tmp_path), mode


def test_key_in_environment_means_online(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert wandb_logged_in()
    assert not _offline(tmp_path)
    assert _offline(tmp_path, offline=True)  # an explicit choice wins


def test_netrc_login_means_online(home: Path, tmp_path: Path) -> None:
    _netrc(home, "api.wandb.ai")
    assert wandb_logged_in()
    assert not _offline(tmp_path)


@pytest.mark.parametrize("netrc", ["other-machine", "garbled"])
def test_netrc_without_a_wandb_entry_means_offline(netrc: str, home: Path, tmp_path: Path) -> None:
    if netrc == "garbled":
        (home / ".netrc").write_text("machine\n")
        (home / ".netrc").chmod(0o600)
    else:
        _netrc(home, "example.com")
    assert not wandb_logged_in()
    assert _offline(tmp_path)


def test_wandb_mode_online_without_a_key_is_respected(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    assert not _offline(tmp_path)


def test_offline_run_never_writes_the_key(
    home: Path, tiny_root: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    args = fit_args(tiny_root, cache_dir, out, RECIPES / "base.yaml", CONF / "teacher.yaml")
    with command_line("python -m asc_kd.fit"):
        main(args)
    assert len(offline_runs(out / "teacher-seed0")) == 1
    written = [path for path in tmp_path.rglob("*") if path.is_file() and not path.is_symlink()]
    assert len(written) > 5
    leaks = [str(path) for path in written if FAKE_KEY.encode() in path.read_bytes()]
    assert leaks == [], "the API key was written to disk"


def test_runs_are_quiet_unless_wandb_quiet_says_no(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_QUIET", raising=False)
    assert AutoWandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init["settings"].quiet is True
    # as a fit's parser builds it: every wandb.init argument given, settings=None among them
    built = AutoWandbLogger(save_dir=str(tmp_path), offline=True, settings=None)
    assert built._wandb_init["settings"].quiet is True
    monkeypatch.setenv("WANDB_QUIET", "false")
    assert AutoWandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init["settings"].quiet is False


#: Two offline runs in a fresh process (W&B not silenced): quiet by default, then WANDB_QUIET=false.
TWO_RUNS = """
import os, sys
from asc_kd.tracking.loggers import AutoWandbLogger
for name in ("quiet", "loud"):
    if name == "loud":
        os.environ["WANDB_QUIET"] = "false"
    logger = AutoWandbLogger(save_dir=os.path.join(sys.argv[1], name), offline=True, name=name)
    for step in range(3):
        logger.log_metrics({"test/acc": 0.25 * step}, step=step)
    logger.experiment.finish()
    print("=== finished", name, file=sys.stderr, flush=True)
"""


@pytest.mark.slow
def test_the_end_of_run_blocks_stay_in_the_runs_files_not_on_the_console(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "WANDB_QUIET")}
    done = subprocess.run(
        [sys.executable, "-c", TWO_RUNS, str(tmp_path)],
        env={**env, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    quiet, loud = output.split("=== finished quiet")
    assert "Run history:" not in quiet and "Run summary:" not in quiet
    assert "Run history:" in loud and "Run summary:" in loud  # WANDB_QUIET=false brings them back
    (run,) = offline_runs(tmp_path / "quiet")  # offline, the run's .wandb log holds its summary
    summary = {
        item.key or "/".join(item.nested_key): item.value_json
        for record in wandb_records(run)
        if record.WhichOneof("record_type") == "summary"
        for item in record.summary.update
    }
    assert summary["test/acc"] == "0.5"
