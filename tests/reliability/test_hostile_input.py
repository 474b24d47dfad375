"""Hostile and odd messages through the real bot: no crash, a defined outcome, nothing that can ping anyone.

Each non-empty text is classified exactly once (live mode reacts once); the negative ones are flagged
and their mod-log cards are posted with ``allowed_mentions`` parsing nothing. Long texts are truncated
to the model's limit, not rejected. Lone surrogates travel as JSON escapes (``"\\ud800"``), as a
Discord-compatible server may send them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.load.harness import NEGATIVE, FakeServer, flag_posts, no_ping, read_flags

pytestmark = pytest.mark.timeout(120)

BAD = NEGATIVE[0]  # "i hate this so much, it is awful": flagged whatever is around it


def hostile_cases(world: FakeServer) -> dict[str, tuple[str, bool]]:
    """name -> (content, expected to be classified)."""
    member, role, channel = world.member_id, world.info["guilds"][0]["roles"]["Moderator"], world.load_channels[1]
    return {
        "empty": ("", False),
        "whitespace": ("   \n\t \u3000  ", False),
        "4000 chars": (((BAD + " ") * 120)[:4000], True),
        "4000 chars, one word": ("a" * 4000, True),
        "NUL bytes": (f"{BAD}\x00\x00 and\x00more\x01\x7f", True),
        "only NUL bytes": ("\x00\x00\x00", False),
        "lone surrogates": (f"{BAD} \ud800 broken \udfff pair \udbff", True),
        "zero-width": ("\u200bi\u200d hate\ufeff this so\u2060 much, it is awful\u200b", True),
        "RTL override": (f"\u202e{BAD}\u202c \u2066isolate\u2069", True),
        "zalgo": ("i h̷̛̺a̸͇̓ẗ̴̰́e̶͈̒ t̷̖͝h̸̢̛i̵͎̾s̶̱̈ so much, it is awful " + "\u0301" * 300, True),
        "emoji only": ("😡🤬💢😡🤬💢", True),
        "code block": (f"```python\nraise SystemExit(1)\n```\n{BAD}\n```", True),
        "URL": (f"{BAD} https://example.com/a?b=c&d=<script>alert(1)</script> <https://x.y>", True),
        "@everyone": (f"@everyone @here {BAD} @everyone", True),
        "mentions": (f"<@{member}> <@!{member}> <@&{role}> <#{channel}> {BAD} <@{member}>", True),
        "markdown": (f"# {BAD}\n> quote\n||spoiler|| **bold** [link](https://evil.example) `tick` \\", True),
    }


def test_hostile_messages(world: FakeServer, make_bot, database: Path) -> None:
    bot = make_bot()
    cases = hostile_cases(world)
    channel = world.load_channels[0]
    ids = dict(zip(cases, world.send_many([(channel, world.member_id, content) for content, _ in cases.values()])))
    expected = {name for name, (_, classified) in cases.items() if classified}

    world.wait_until(lambda: all(str(ids[n]) in world.report()["reactions"] for n in expected), 60, "every non-empty hostile message classified")
    bot.probe()  # a message after them all: anything still pending for the hostile ones has been handled
    report = world.report()
    reacted = Counter({name: len(report["reactions"].get(str(ids[name]), [])) for name in cases})
    assert {n for n, c in reacted.items() if c} == expected, reacted
    assert all(reacted[n] == 1 for n in expected), reacted

    rows = {r["message_id"]: r for r in read_flags(database)}
    # Those that keep the negative sentence intact score >= 0.8 (threshold 0.6); RTL/URL/markdown ones may dip below.
    for name in ("4000 chars", "NUL bytes", "zero-width", "zalgo", "code block", "@everyone", "mentions"):
        assert ids[name] in rows, f"{name!r} was not flagged"
    long_row = rows[ids["4000 chars"]]
    assert len(long_row["excerpt"]) <= 300  # the stored excerpt is bounded; the message was classified, not rejected

    world.wait_until(lambda: all(r["modlog_message_id"] for r in read_flags(database)), 30, "every flag posted")
    posts = flag_posts(world.report(), world.mod_log)
    assert Counter(int(p["flagged_message_id"]) for p in posts) == Counter(set(rows)), "each flag posted exactly once"
    everything = world.report()["bot_posts"]
    assert everything and all(no_ping(p) for p in everything), [p for p in everything if not no_ping(p)]

    # The same texts through /sentiment and the "Check sentiment" menu: a private answer, never a ping.
    for user, name in ((world.moderator_id, "@everyone"), (world.member_id, "lone surrogates")):
        answer = _slash(world, user, "sentiment", {"text": cases[name][0]})
        assert answer["callback"] and answer["callback"]["flags"] & 64, answer
        assert _allowed_none(answer["callback"]["data"]), answer
    answer = _menu(world, world.members["user-1"], "Check sentiment", ids["mentions"])
    assert answer["callback"] and _allowed_none(answer["callback"]["data"] or {}) or _followups_allowed_none(answer), answer

    assert bot.alive()
    assert bot.stop() == 0
    assert not bot.problems(), bot.problems()
    assert ids["lone surrogates"] in rows, "the flag of a message with a lone surrogate was lost"


def _allowed_none(data: dict) -> bool:
    allowed = data.get("allowed_mentions")
    return isinstance(allowed, dict) and allowed.get("parse") == [] and not allowed.get("users") and not allowed.get("roles")


def _followups_allowed_none(answer: dict) -> bool:
    return bool(answer["followups"]) and all(_allowed_none({"allowed_mentions": f["allowed_mentions"]}) for f in answer["followups"])


def _slash(world: FakeServer, user: int, name: str, options: dict) -> dict:
    sent = world.post("/_control/slash_command", {"guild_id": str(world.guild_id), "channel_id": str(world.load_channels[0]),
                                                  "user_id": str(user), "name": name, "options": options})
    return world.get(f"/_control/interactions/{sent['id']}?wait=30", timeout=40)


def _menu(world: FakeServer, user: int, name: str, message_id: int) -> dict:
    sent = world.post("/_control/message_command", {"guild_id": str(world.guild_id), "channel_id": str(world.load_channels[0]),
                                                    "user_id": str(user), "name": name, "target_message_id": str(message_id)})
    return world.get(f"/_control/interactions/{sent['id']}?wait=30", timeout=40)
