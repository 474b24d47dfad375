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

from tests.support.helpers import CLEAR_NEGATIVE, pings_nobody, poll_until_blocking
from tests.support.load.harness import FakeServer, flag_posts, read_flags

pytestmark = pytest.mark.timeout(120)

BAD = CLEAR_NEGATIVE[0]  # "i hate this so much, it is awful": flagged whatever is around it


def hostile_cases(fake_server: FakeServer) -> dict[str, tuple[str, bool]]:
    """name -> (content, expected to be classified)."""
    member, role, channel = (
        fake_server.member_id,
        fake_server.info["guilds"][0]["roles"]["Moderator"],
        fake_server.load_channels[1],
    )
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


def test_hostile_messages(fake_server: FakeServer, make_bot, database_path: Path) -> None:
    bot = make_bot(MOODBOT_MODEL="mpnet")  # the default encoder: which hostile variants get flagged is its promise
    cases = hostile_cases(fake_server)
    channel = fake_server.load_channels[0]
    ids = dict(
        zip(cases, fake_server.send_many([(channel, fake_server.member_id, content) for content, _ in cases.values()]),
            strict=True)
    )
    expected = {name for name, (_, classified) in cases.items() if classified}

    poll_until_blocking(
        lambda: all(str(ids[n]) in fake_server.report()["reactions"] for n in expected),
        60,
        "every non-empty hostile message classified",
    )
    bot.probe()  # a message after them all: anything still pending for the hostile ones has been handled
    report = fake_server.report()
    reacted = Counter({name: len(report["reactions"].get(str(ids[name]), [])) for name in cases})
    assert {n for n, c in reacted.items() if c} == expected, reacted
    assert all(reacted[n] == 1 for n in expected), reacted

    rows = {r["message_id"]: r for r in read_flags(database_path)}
    # Those that keep the negative sentence intact score >= 0.8 (threshold 0.6); RTL/URL/markdown ones may dip below.
    for name in ("4000 chars", "NUL bytes", "zero-width", "zalgo", "code block", "@everyone", "mentions"):
        assert ids[name] in rows, f"{name!r} was not flagged"
    long_row = rows[ids["4000 chars"]]
    assert len(long_row["excerpt"]) <= 300  # the stored excerpt is bounded; the message was classified, not rejected

    poll_until_blocking(lambda: all(r["modlog_message_id"] for r in read_flags(database_path)), 30, "every flag posted")
    posts = flag_posts(fake_server.report(), fake_server.mod_log)
    assert Counter(int(p["flagged_message_id"]) for p in posts) == Counter(set(rows)), "each flag posted exactly once"
    everything = fake_server.report()["bot_posts"]
    assert everything and all(pings_nobody(p) for p in everything), [p for p in everything if not pings_nobody(p)]

    # The same texts through /sentiment and the "Check sentiment" menu: a private answer, never a ping.
    for user, name in ((fake_server.moderator_id, "@everyone"), (fake_server.member_id, "lone surrogates")):
        answer = _slash(fake_server, user, "sentiment", {"text": cases[name][0]})
        assert answer["callback"] and answer["callback"]["flags"] & 64, answer
        assert pings_nobody(answer["callback"]["data"]), answer
    answer = _menu(fake_server, fake_server.members["user-1"], "Check sentiment", ids["mentions"])
    callback_safe = answer["callback"] and pings_nobody(answer["callback"]["data"] or {})
    assert callback_safe or (answer["followups"] and all(pings_nobody(f) for f in answer["followups"])), answer

    assert bot.alive()
    assert bot.stop() == 0
    assert not bot.problems(), bot.problems()
    assert ids["lone surrogates"] in rows, "the flag of a message with a lone surrogate was lost"


def _slash(fake_server: FakeServer, user: int, name: str, options: dict) -> dict:
    sent = fake_server.post(
        "/_control/slash_command",
        {
            "guild_id": str(fake_server.guild_id),
            "channel_id": str(fake_server.load_channels[0]),
            "user_id": str(user),
            "name": name,
            "options": options,
        },
    )
    return fake_server.get(f"/_control/interactions/{sent['id']}?wait=30", timeout=40)


def _menu(fake_server: FakeServer, user: int, name: str, message_id: int) -> dict:
    sent = fake_server.post(
        "/_control/message_command",
        {
            "guild_id": str(fake_server.guild_id),
            "channel_id": str(fake_server.load_channels[0]),
            "user_id": str(user),
            "name": name,
            "target_message_id": str(message_id),
        },
    )
    return fake_server.get(f"/_control/interactions/{sent['id']}?wait=30", timeout=40)
