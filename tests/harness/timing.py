"""A per-tier timing summary at the end of every pytest run (loaded by tests/conftest.py).

For each tier (the folder under tests/: core, host, e2e) it prints how many tests ran, the wall-clock span
from the first setup to the last teardown, and the summed test time (setup + call + teardown; with
pytest-xdist the sum exceeds the span by the parallelism). Works on the xdist controller too: the workers'
reports carry their start/stop times.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class _Tier:
    tests: int = 0
    summed: float = 0.0
    start: float = float("inf")
    stop: float = 0.0


_TIERS: dict[str, _Tier] = {}


def _tier_of(nodeid: str) -> str:
    parts = nodeid.split("::", 1)[0].split("/")
    if parts and parts[0] == "tests":  # rootdir above tests/
        parts = parts[1:]
    return parts[0] if len(parts) > 1 else "other"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = _TIERS.setdefault(_tier_of(report.nodeid), _Tier())
    tier.summed += report.duration
    tier.start = min(tier.start, report.start)
    tier.stop = max(tier.stop, report.stop)
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        tier.tests += 1


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIERS:
        return
    terminalreporter.section("time per tier")
    terminalreporter.write_line(f"{'tier':<8}{'tests':>7}{'wall':>12}{'summed':>12}")
    for name in sorted(_TIERS):
        t = _TIERS[name]
        wall = max(0.0, t.stop - t.start)
        terminalreporter.write_line(f"{name:<8}{t.tests:>7}{_minutes(wall):>12}{_minutes(t.summed):>12}")
    start = min(t.start for t in _TIERS.values())
    stop = max(t.stop for t in _TIERS.values())
    total = sum(t.tests for t in _TIERS.values())
    summed = sum(t.summed for t in _TIERS.values())
    terminalreporter.write_line(f"{'all':<8}{total:>7}{_minutes(stop - start):>12}{_minutes(summed):>12}")
