"""Reduced load run through the real bot: a burst far beyond the database pool.

The full one: ``python -m tests.support.load --messages 10000 --channels 50``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.load.driver import run_load

pytestmark = pytest.mark.timeout(170)


def test_reduced_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """6,000 messages at once over 10 channels, with one database connection: each eligible message classified
    exactly once, each negative one flagged and posted once, no pings, bounded RSS, a clean exit, and nothing in
    the log from discord.py's event wrapper (``Ignoring exception``: a message it dropped) or its gateway warnings.

    300 distinct texts: after the first of each, the model answers from its cache, so the burst loads the store and
    the event loop, the part that used to fail (every handler waiting for the pool until it timed out). Then 300
    edits: the unchanged ones (discord.py's message cache no longer holds them) and those into another message's text
    are answered by the embedding cache, those into a new negative text are read by the model, flagged once, and
    their reaction follows.
    """
    result = run_load(
        tmp_path, messages=6000, channels=10, burst=6000, distinct_texts=300, max_rss_mb=1500,
        bot_env={"MOODBOT_DATABASE_POOL_SIZE": "1"}, edits=300,
        log=lambda m: None,
    )
    (tmp_path / "figures.json").write_text(json.dumps(result.figures, indent=1))
    with capsys.disabled():
        keys = (
            "eligible",
            "flags",
            "messages_per_s",
            "classify_p99_s",
            "flag_post_p50_s",
            "flag_post_p99_s",
            "loop_lag_max_ms",
            "loop_lag_p99_ms",
            "rss_peak_mib",
            "startup_s",
            "edits_admitted",
            "edits_classified",
            "edits_cached",
        )
        print("\nreduced load:", {k: result.figures.get(k) for k in keys})
    assert not result.failures, f"{result.failures}\n{Path(result.figures['log']).read_text(errors='replace')[-3000:]}"
