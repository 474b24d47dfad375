"""Discord misbehaves: 429 with retry_after and 500 on posts, and the gateway websocket dropped during a burst.

The bot must ride it out: retry the REST calls, RESUME the gateway session (the fake server replays
the events the bot missed), and end with every message classified once and every flag stored and
posted exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.support.helpers import CLEAR_NEGATIVE, pings_nobody, poll_until_blocking
from tests.support.load.harness import FakeServer, flag_posts, make_text, read_flags

pytestmark = pytest.mark.timeout(150)


def test_rate_limits_server_errors_and_gateway_drop(fake_server: FakeServer, make_bot, database_path: Path) -> None:
    bot = make_bot()
    posts_path = rf"/channels/{fake_server.mod_log}/messages"
    plan: list[tuple[int, int, str]] = []

    def burst(n: int, tag: str) -> list[tuple[int, int, str]]:
        start = len(plan)
        chunk = [
            (fake_server.load_channels[i % 10], fake_server.users[i % 4], make_text(i, i % 2 == 0, tag))
            for i in range(start, start + n)
        ]
        plan.extend(chunk)
        return chunk

    sent: list[int] = []

    def settle(what: str) -> None:
        negatives = {m for m, (_, _, text) in zip(sent, plan, strict=True) if text.startswith(CLEAR_NEGATIVE)}

        def done() -> bool:
            report = fake_server.report()
            return all(str(m) in report["reactions"] for m in sent) and len(
                flag_posts(report, fake_server.mod_log)
            ) >= len(negatives)

        poll_until_blocking(done, 60, f"every message classified and every flag posted after {what}", interval=0.5)

    # 1. 429 with retry_after on the flag posts and on reactions.
    fake_server.fail_next(2, 429, method="POST", path=posts_path, retry_after=0.4)
    fake_server.fail_next(2, 429, method="PUT", path=r"/channels/\d+/messages/\d+/reactions/.+", retry_after=0.2)
    sent += fake_server.send_many(burst(20, "A"))
    settle("429s")
    # 2. 500 on the flag posts (discord.py retries after 1 s, then 3 s).
    fake_server.fail_next(2, 500, method="POST", path=posts_path)
    sent += fake_server.send_many(burst(20, "B"))
    settle("500s")
    # 3. Drop the gateway (TCP reset, session resumable) in the middle of a burst; what follows is sent disconnected.
    sent += fake_server.send_many(burst(40, "C"))
    assert fake_server.drop_gateway(abrupt=True, resumable=True) == 1
    sent += fake_server.send_many(burst(40, "D"))
    settle("the gateway drop")

    negatives = {m for m, (_, _, text) in zip(sent, plan, strict=True) if text.startswith(CLEAR_NEGATIVE)}

    bot.probe()  # still serving
    # A clean stop drains the bot's backlog: once it has exited, nothing more can be reacted to or posted, and the
    # counters it logged say that it handled each message it was sent exactly once (a replay would be admitted).
    assert bot.stop() == 0
    assert not bot.problems(), bot.problems()
    totals = bot.admission_totals()
    admitted = len(sent) + bot.probes
    assert (totals["admitted"], totals["handled"], totals["failed"]) == (admitted, admitted, 0), totals
    report = fake_server.report()

    assert report["gateway"]["resume_count"] >= 1 and report["gateway"]["identify_count"] == 1, report["gateway"]
    assert report["statuses"].get("POST 429", 0) >= 2 and report["statuses"].get("POST 500", 0) >= 2, report["statuses"]
    reactions = Counter({m: len(report["reactions"].get(str(m), [])) for m in sent})
    assert all(n == 1 for n in reactions.values()), {m: n for m, n in reactions.items() if n != 1}

    rows = read_flags(database_path)
    assert sorted(r["message_id"] for r in rows) == sorted(negatives)
    posts = flag_posts(report, fake_server.mod_log)
    per_message = Counter(int(p["flagged_message_id"]) for p in posts)
    assert set(per_message) == negatives and all(n == 1 for n in per_message.values()), {
        m: n for m, n in per_message.items() if n != 1
    }
    assert {r["modlog_message_id"] for r in rows} == {int(p["id"]) for p in posts}
    assert all(pings_nobody(p) for p in posts)


def test_flag_post_that_discord_py_gives_up_on_is_retried(
    fake_server: FakeServer, make_bot, database_path: Path
) -> None:
    """discord.py gives up on a request after 5 tries (429s and 5xx count alike, e.g. a 25 s Discord outage).
    The flag is stored and Moderation.post_unposted, a periodic task, posts it once Discord answers again."""
    bot = make_bot()
    fake_server.fail_next(5, 429, method="POST", path=rf"/channels/{fake_server.mod_log}/messages", retry_after=0.1)
    sent = fake_server.send(fake_server.load_channels[0], fake_server.users[0], make_text(7, True, "G"))
    message_id = int(sent["data"]["id"])
    poll_until_blocking(
        lambda: any(r["message_id"] == message_id for r in read_flags(database_path)), 60, "the flag to be stored"
    )
    poll_until_blocking(
        lambda: any(r["message_id"] == message_id and r["modlog_message_id"] for r in read_flags(database_path)),
        45,
        "the flag to be posted once Discord answers again",
    )
    assert (
        len(
            [
                p
                for p in flag_posts(fake_server.report(), fake_server.mod_log)
                if int(p["flagged_message_id"]) == message_id
            ]
        )
        == 1
    )
    assert bot.stop() == 0
