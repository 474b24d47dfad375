"""Reduced load run through the real bot.

The full one: ``python -m tests.support.load --messages 10000 --channels 50``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.load.driver import run_load

pytestmark = pytest.mark.timeout(170)


def test_reduced_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """600 distinct messages over 10 channels in bursts of 150: each eligible message classified exactly once,
    each negative one flagged in SQLite and posted once, no pings, bounded RSS, clean log and clean SIGTERM exit."""
    result = run_load(tmp_path, messages=600, channels=10, burst=150, gap_s=0.5, max_rss_mb=1500, log=lambda m: None)
    (tmp_path / "figures.json").write_text(json.dumps(result.figures, indent=1))
    with capsys.disabled():
        keys = (
            "eligible",
            "flags",
            "messages_per_s",
            "classify_p99_s",
            "flag_post_p50_s",
            "flag_post_p99_s",
            "rss_peak_mib",
            "startup_s",
        )
        print("\nreduced load:", {k: result.figures.get(k) for k in keys})
    assert not result.failures, f"{result.failures}\n{Path(result.figures['log']).read_text(errors='replace')[-3000:]}"
