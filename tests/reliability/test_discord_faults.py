"""Discord misbehaves: 429 with retry_after and 500 on posts, and the gateway websocket dropped during a burst.

The bot must ride it out: retry the REST calls, RESUME the gateway session (the fake server replays
the events the bot missed), and end with every message classified once and every flag stored and
posted exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.load.harness import NEGATIVE, FakeServer, flag_posts, make_text, no_ping, read_flags

pytestmark = pytest.mark.timeout(150)


def test_rate_limits_server_errors_and_gateway_drop(world: FakeServer, make_bot, database: Path) -> None:
    bot = make_bot()
    posts_path = rf"/channels/{world.mod_log}/messages"
    plan: list[tuple[int, int, str]] = []

    def burst(n: int, tag: str) -> list[tuple[int, int, str]]:
        start = len(plan)
        chunk = [(world.load_channels[i % 10], world.users[i % 4], make_text(i, i % 2 == 0, tag)) for i in range(start, start + n)]
        plan.extend(chunk)
        return chunk

    sent: list[int] = []

    def settle(what: str) -> None:
        negatives = {m for m, (_, _, text) in zip(sent, plan) if text.startswith(NEGATIVE)}

        def done() -> bool:
            report = world.report()
            return all(str(m) in report["reactions"] for m in sent) and len(flag_posts(report, world.mod_log)) >= len(negatives)

        world.wait_until(done, 60, f"every message classified and every flag posted after {what}", interval=0.5)

    # 1. 429 with retry_after on the flag posts and on reactions.
    world.fail_next(2, 429, method="POST", path=posts_path, retry_after=0.4)
    world.fail_next(2, 429, method="PUT", path=r"/channels/\d+/messages/\d+/reactions/.+", retry_after=0.2)
    sent += world.send_many(burst(20, "A"))
    settle("429s")
    # 2. 500 on the flag posts (discord.py retries after 1 s, then 3 s).
    world.fail_next(2, 500, method="POST", path=posts_path)
    sent += world.send_many(burst(20, "B"))
    settle("500s")
    # 3. Drop the gateway (TCP reset, session resumable) in the middle of a burst; what follows is sent while disconnected.
    sent += world.send_many(burst(40, "C"))
    assert world.drop_gateway(abrupt=True, resumable=True) == 1
    sent += world.send_many(burst(40, "D"))
    settle("the gateway drop")

    negatives = {m for m, (_, _, text) in zip(sent, plan) if text.startswith(NEGATIVE)}

    time.sleep(1.5)  # room for any duplicate to show up
    report = world.report()

    assert report["gateway"]["resume_count"] >= 1 and report["gateway"]["identify_count"] == 1, report["gateway"]
    assert report["statuses"].get("POST 429", 0) >= 2 and report["statuses"].get("POST 500", 0) >= 2, report["statuses"]
    reactions = Counter({m: len(report["reactions"].get(str(m), [])) for m in sent})
    assert all(n == 1 for n in reactions.values()), {m: n for m, n in reactions.items() if n != 1}

    rows = read_flags(database)
    assert sorted(r["message_id"] for r in rows) == sorted(negatives)
    posts = flag_posts(report, world.mod_log)
    per_message = Counter(int(p["flagged_message_id"]) for p in posts)
    assert set(per_message) == negatives and all(n == 1 for n in per_message.values()), {m: n for m, n in per_message.items() if n != 1}
    assert {r["modlog_message_id"] for r in rows} == {int(p["id"]) for p in posts}
    assert all(no_ping(p) for p in posts)

    bot.probe()  # still serving
    assert bot.stop() == 0
    assert not bot.problems(), bot.problems()


def test_flag_post_that_discord_py_gives_up_on_is_retried(world: FakeServer, make_bot, database: Path) -> None:
    """discord.py gives up on a request after 5 tries (429s and 5xx count alike, e.g. a 25 s Discord outage).
    The flag is stored and Moderation.post_unposted, a periodic task, posts it once Discord answers again."""
    bot = make_bot()
    world.fail_next(5, 429, method="POST", path=rf"/channels/{world.mod_log}/messages", retry_after=0.1)
    sent = world.send(world.load_channels[0], world.users[0], make_text(7, True, "G"))
    message_id = int(sent["data"]["id"])
    world.wait_until(lambda: any(r["message_id"] == message_id for r in read_flags(database)), 60, "the flag to be stored")
    world.wait_until(lambda: any(r["message_id"] == message_id and r["modlog_message_id"] for r in read_flags(database)),
                     45, "the flag to be posted once Discord answers again")
    assert len([p for p in flag_posts(world.report(), world.mod_log) if int(p["flagged_message_id"]) == message_id]) == 1
    assert bot.stop() == 0
