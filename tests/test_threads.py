"""Threads that follow the cores other processes leave free."""

from __future__ import annotations

import pytest
import torch

from tagdata.errors import UserError
from tagmodels.training import threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


STAT = """cpu  {busy} 0 0 {idle} 0 0 0 0 0 0
cpu0 1 2 3 4 5 6 7 8 0 0
intr 12345
"""


def stat(busy: int, idle: int) -> str:
    """Hand-written /proc/stat text whose aggregate line has ``busy`` user and ``idle`` idle jiffies."""
    return STAT.format(busy=busy, idle=idle)


def test_cpu_ticks_parse_the_aggregate_line():
    text = "cpu  100 5 20 700 30 1 2 3 40 0\ncpu0 50 0 10 350 15 0 1 1 0 0\n"
    assert threads.cpu_ticks(text) == (100 + 5 + 20 + 1 + 2 + 3, 700 + 30)  # guest is inside user already
    with pytest.raises(ValueError, match="aggregate cpu line"):
        threads.cpu_ticks("intr 1 2 3\n")


@pytest.mark.parametrize("busy, idle, cpus, expected", [(100, 100, 2, 1.0), (0, 200, 2, 0.0), (150, 50, 4, 3.0),
                                                        (0, 0, 2, 0.0)])
def test_busy_cores_between_two_snapshots(busy, idle, cpus, expected):
    assert threads.busy_cores(stat(1000, 5000), stat(1000 + busy, 5000 + idle), cpus) == pytest.approx(expected)


def test_automatic_threads_follow_proc_stat_now(monkeypatch):
    """One core busy over the sample on 2 cores leaves 1, whatever the (lagging) load average says."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    for others, expected in ((95, 1), (10, 2), (200, 1)):
        snapshots = iter([stat(1000, 5000), stat(1000 + others, 5000 + 200 - others)])
        monkeypatch.setattr(threads, "_read_stat", lambda: next(snapshots))
        assert threads.resolve_threads("auto") == expected


def test_explicit_and_automatic_thread_counts(monkeypatch):
    """--threads N overrides; without /proc/stat (macOS) the load average decides."""
    assert threads.resolve_threads("3") == 3
    monkeypatch.setattr(threads, "_read_stat", lambda: None)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert threads.resolve_threads("auto") == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert threads.resolve_threads(None) == 2
    for bad in ("0", "-2", "many"):
        with pytest.raises(UserError, match="--threads"):
            threads.resolve_threads(bad)


@pytest.mark.parametrize("others_ticks, expected", [(95, 1), (10, 2), (400, 1)])
def test_core_share_takes_the_cores_others_left(monkeypatch, others_ticks, expected):
    """Over a 1 s period on 2 cores: others using ~1 core (95 ticks) leave 1, ~0.1 core leave 2."""
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads, "CLOCK_TICKS", 100)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    samples = iter([(1000, 500), (1000 + others_ticks + 80, 580)])  # we used 80 ticks meanwhile
    monkeypatch.setattr(threads, "_busy_ticks", lambda: next(samples))
    torch.set_num_threads(2)
    share = threads.CoreShare(period=0.5)
    share.adjust()
    assert torch.get_num_threads() == expected


def test_speed_contention_times_each_scenario(tmp_path):
    from click.testing import CliRunner
    from tagtool_cli.main import tagtool

    out = tmp_path / "contention.json"
    result = CliRunner().invoke(tagtool, ["speed-contention", "--threads", "1", "--images", "40", "--epochs", "1",
                                          "--out", str(out)])
    assert result.exit_code == 0, result.output
    import json

    (row,) = json.loads(out.read_text())["settings"]
    assert row["threads"] == "1"
    for key in ("alone_seconds", "beside_busy_seconds", "two_at_once_seconds"):
        assert row[key] > 0
    assert row["two_at_once_slowdown"] == round(row["two_at_once_seconds"] / row["alone_seconds"], 2)
