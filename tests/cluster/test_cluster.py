"""moodbot scaled out on one machine: a bot process per gateway shard, sharing PostgreSQL, Redis and Ray Serve.

Every part is a real server or process on loopback (:mod:`tests.support.cluster`); the fake Discord recommends
2 shards and has a guild on each. What counts is what Discord and the database would show: every channel is in
live mode, so each classification is one reaction; each flag is one row in PostgreSQL and one card in its guild's
mod-log. One member opted out before the start; their messages must get neither.

The tests run in file order on one topology (starting Ray costs seconds); each leaves it running and healthy, but
the last, which stops the bots cleanly: once they have drained and exited, what each test found exactly once (or
never) is checked again on what Discord and the database show for good (the ``ledger``), and each bot's own
counters must show every message it admitted handled, none failed.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from classifier.serving.protocol import INFO_PATH, STATS_PATH, service_infos
from classifier.text import prepare_text
from tests.support.cluster import Cluster
from tests.support.helpers import poll_until_blocking
from tests.support.inference_server import is_loopback, listening_sockets
from tests.support.load.harness import flag_posts, make_text, percentile

pytest.importorskip("ray.serve", reason="the cluster test needs the scale extra: pip install -e '.[test,scale]'")
pytestmark = pytest.mark.timeout(300)

NEGATIVE_EVERY = 3
REDIS_PREFIX = "moodbot:emb:"
#: A claim of a bot that died lapses after 30 s, and the re-poster passes every 10 s.
RECOVERY_S = 75.0


@dataclass
class Burst:
    """Messages sent across the shards' guilds: ids, the shard of each, and what each must get."""

    shard: dict[int, int]
    eligible: set[int]
    negative: set[int]  # eligible and clearly negative: one flag each

    def on(self, shard: int) -> Burst:
        mine = {m for m, s in self.shard.items() if s == shard}
        return Burst({m: shard for m in mine}, self.eligible & mine, self.negative & mine)

    def __or__(self, other: Burst) -> Burst:
        return Burst(self.shard | other.shard, self.eligible | other.eligible, self.negative | other.negative)


def send_burst(
    cluster: Cluster, count: int, tag: str, shards: tuple[int, ...] = (0, 1), *, pause_every: int = 0,
    pause_s: float = 0.0,
) -> Burst:
    """``count`` distinct messages, round robin over the shards' guilds, their load channels and the members."""
    assert cluster.discord is not None
    plan = []
    for index in range(count):
        shard = shards[index % len(shards)]
        guild, turn = cluster.discord.guilds[shard], index // len(shards)
        author = cluster.users[turn % len(cluster.users)]
        negative = index % NEGATIVE_EVERY == 0
        plan.append((guild.load_channels[turn % len(guild.load_channels)], author, make_text(index, negative, tag)))
    ids = cluster.discord.send_many(plan, pause_every=pause_every, pause_s=pause_s)
    eligible = {m for m, (_, author, _) in zip(ids, plan, strict=True) if author != cluster.opted_out}
    negative = {m for i, m in enumerate(ids) if i % NEGATIVE_EVERY == 0} & eligible
    return Burst({m: shards[i % len(shards)] for i, m in enumerate(ids)}, eligible, negative)


def cards(cluster: Cluster, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every flag card the bots posted, in any guild's mod-log (each post knows its channel)."""
    assert cluster.discord is not None
    return [post for guild in cluster.discord.guilds for post in flag_posts(report, guild.mod_log)]


def wait_done(cluster: Cluster, burst: Burst, timeout: float, what: str) -> dict[str, Any]:
    """Wait until each eligible message has its reaction and each negative one its card, recorded on its flag row;
    the server's report from then on.

    A card is posted before its row records it, and the re-poster posts only flags no row records: once every row
    records its card, no card of these flags is on its way. Whether anything still came later (a second delivery of
    a message) is checked once more after the bots have drained and exited (the last test).
    """
    assert cluster.discord is not None

    def done() -> bool:
        report = cluster.discord.report()
        reacted = burst.eligible <= {int(m) for m in report["reactions"]}
        carded = burst.negative <= {int(p["flagged_message_id"]) for p in cards(cluster, report)}
        if not (reacted and carded):
            return False
        recorded = {row["message_id"] for row in cluster.flags() if row["modlog_message_id"] is not None}
        return burst.negative <= recorded

    poll_until_blocking(done, timeout, what, interval=0.5)
    return cluster.discord.report()


def check_exactly_once(cluster: Cluster, burst: Burst, report: dict[str, Any]) -> None:
    """One reaction per eligible message and none for the others; one flag row and one card per negative one,
    the card in the mod-log of the message's own guild and recorded on the row."""
    assert cluster.discord is not None
    reactions = Counter({int(m): len(times) for m, times in report["reactions"].items()})
    assert [m for m in burst.eligible if reactions[m] != 1] == []
    assert [m for m in set(burst.shard) - burst.eligible if reactions[m]] == [], "an opted-out member was classified"
    rows = [row for row in cluster.flags() if row["message_id"] in burst.shard]
    assert Counter(row["message_id"] for row in rows) == Counter(burst.negative)
    posted = [post for post in cards(cluster, report) if int(post["flagged_message_id"]) in burst.shard]
    assert Counter(int(post["flagged_message_id"]) for post in posted) == Counter(burst.negative)
    mod_logs = {shard: str(cluster.discord.guilds[shard].mod_log) for shard in set(burst.shard.values())}
    assert all(post["channel_id"] == mod_logs[burst.shard[int(post["flagged_message_id"])]] for post in posted)
    assert {row["modlog_message_id"] for row in rows} == {int(post["id"]) for post in posted}


def settled(cluster: Cluster, ledger: dict[str, Any], burst: Burst, timeout: float, what: str) -> None:
    """Wait for ``burst`` to be done, check it exactly once, and keep it for the check after the bots exited."""
    check_exactly_once(cluster, burst, wait_done(cluster, burst, timeout, what))
    ledger["exactly_once"].append(burst)


def log_since(bot_log: str, start: int) -> str:
    return bot_log[start:]


def rss_mib(cluster: Cluster) -> list[float]:
    return [round(psutil.Process(bot.pid).memory_info().rss / 2**20) for bot in cluster.bots]


def test_shards_log_in_by_turns_and_listen_on_loopback_only(cluster: Cluster, figures: dict[str, Any]) -> None:
    assert cluster.discord and cluster.serve and cluster.redis and cluster.redis.process and cluster.postgres
    shards = cluster.discord.gateway_shards()
    assert shards["connected"] == [[0, 2], [1, 2]]
    logins = {shard: at for at, shard, _ in shards["identifies"]}
    # max_concurrency 1: the Redis lock of the one rate-limit bucket lets one shard start a session per 5 s
    assert abs(logins[0] - logins[1]) >= 4.5
    requests = cluster.discord.get("/_control/requests")["requests"]
    syncs = [r for r in requests if r["method"] == "PUT" and r["path"].endswith("/commands")]
    assert len(syncs) == 1, "two processes starting together must sync the application commands once"

    pids = {bot.pid for bot in cluster.bots} | cluster.serve.process_tree() | {cluster.redis.process.pid}
    pids |= {cluster.discord.proc.pid, cluster.postgres.pid}
    pids |= {child.pid for child in psutil.Process(cluster.postgres.pid).children(recursive=True)}
    sockets = listening_sockets(pids)
    assert sockets and [s for s in sockets if not is_loopback(s[1])] == []
    figures["rss_idle_mib"] = rss_mib(cluster)


def test_an_opt_out_through_shard_0_holds_on_shard_1_within_a_second(
    cluster: Cluster, figures: dict[str, Any], ledger: dict[str, Any]
) -> None:
    """Each process keeps opt-outs for 0.5 s: shard 1, which has just read the member's (not opted out), respects the
    opt-out made through shard 0 for a message sent 1 s after it was answered."""
    assert cluster.discord is not None
    server, (guild0, guild1) = cluster.discord, cluster.discord.guilds
    member, witness = cluster.users[1], cluster.users[0]
    warm = server.send(guild1.load_channels[0], member, make_text(0, False, "OPT"))["data"]["id"]
    poll_until_blocking(lambda: warm in server.report()["reactions"], 30, "shard 1 to classify the member")
    answer = server.slash(guild0, member, "privacy", subcommand="optout")
    answered = time.monotonic()
    assert answer["callback"]["flags"] & 64 and "opted out" in answer["callback"]["data"]["content"]
    time.sleep(max(0.0, 1.0 - (time.monotonic() - answered)))
    hidden = server.send(guild1.load_channels[0], member, make_text(1, True, "OPT"))["data"]["id"]
    sent_after = time.monotonic() - answered
    seen = server.send(guild1.load_channels[0], witness, make_text(2, True, "OPT"))["data"]["id"]
    poll_until_blocking(lambda: seen in server.report()["reactions"], 30, "shard 1 to classify the witness")
    assert hidden not in server.report()["reactions"] and sent_after < 1.2
    assert int(hidden) not in {row["message_id"] for row in cluster.flags()}
    ledger["never"].add(int(hidden))  # nor later: checked again once the bots have drained and exited

    # and back: an opt-in through shard 1 holds on shard 0 within a second
    assert "opted in" in server.slash(guild1, member, "privacy", subcommand="optin")["callback"]["data"]["content"]
    time.sleep(1.0)
    again = server.send(guild0.load_channels[0], member, make_text(3, False, "OPT"))["data"]["id"]
    poll_until_blocking(lambda: again in server.report()["reactions"], 30, "shard 0 to classify after the opt-in")
    figures["opt_out_to_next_message_s"] = round(sent_after, 3)


def test_a_text_first_seen_on_shard_0_is_a_cache_hit_on_shard_1(cluster: Cluster) -> None:
    assert cluster.discord and cluster.serve and cluster.redis
    server, (guild0, guild1) = cluster.discord, cluster.discord.guilds
    text = f"the new patch notes look wonderful, thanks team ({time.time_ns()})"
    sent = server.send(guild0.load_channels[1], cluster.users[0], text)["data"]["id"]
    poll_until_blocking(lambda: sent in server.report()["reactions"], 30, "shard 0 to classify the text")
    namespace = service_infos(cluster.serve.get(INFO_PATH))[0].cache_namespace
    key = REDIS_PREFIX + hashlib.sha256(namespace.encode() + b"\x00" + prepare_text(text).encode()).hexdigest()
    redis = cluster.redis.client()
    poll_until_blocking(lambda: redis.exists(key), 10, "shard 0 to write the vector to Redis")
    computed = cluster.serve.get(STATS_PATH)["texts"]

    answer = server.slash(guild1, cluster.users[0], "sentiment", {"text": text})
    content = answer["callback"]["data"]["content"]
    assert "cached" in content and "computed" not in content, content
    assert cluster.serve.get(STATS_PATH)["texts"] == computed  # the model was not asked again


def test_2000_messages_over_both_shards_are_classified_and_flagged_once(
    cluster: Cluster, figures: dict[str, Any], ledger: dict[str, Any]
) -> None:
    assert cluster.discord and cluster.serve and cluster.redis
    computed = cluster.serve.get(STATS_PATH)["texts"]
    burst = send_burst(cluster, 2000, "M")
    report = wait_done(cluster, burst, 120, "2,000 messages classified and their flags posted")
    check_exactly_once(cluster, burst, report)
    ledger["exactly_once"].append(burst)
    assert cluster.serve.get(STATS_PATH)["texts"] - computed == len(burst.eligible)  # each text embedded once

    created = {int(m): t for m, t in report["created_at"].items()}
    reacted = [report["reactions"][str(m)][0] - created[m] for m in burst.eligible]
    carded = [p["t"] - created[int(p["flagged_message_id"])] for p in cards(cluster, report)
              if int(p["flagged_message_id"]) in burst.negative]
    redis = cluster.redis.client()
    memory = redis.info("memory")
    vector_bytes = (memory["used_memory"] - memory["used_memory_startup"]) / redis.dbsize()
    first = min(created[m] for m in burst.shard)
    last = max(report["reactions"][str(m)][0] for m in burst.eligible)
    figures["burst"] = {
        "messages": len(burst.shard), "eligible": len(burst.eligible), "flags": len(burst.negative),
        "per_shard_eligible": [len(burst.on(shard).eligible) for shard in (0, 1)],
        "messages_per_s": round(len(burst.eligible) / (last - first), 1),
        "classify_p50_s": round(percentile(reacted, 50), 3), "classify_p99_s": round(percentile(reacted, 99), 3),
        "card_p50_s": round(percentile(carded, 50), 3), "card_p99_s": round(percentile(carded, 99), 3),
        "bot_rss_mib": rss_mib(cluster), "bot_peak_rss_mib": [round(b.peak_rss / 2**20) for b in cluster.bots],
        "redis_bytes_per_vector": round(vector_bytes),
    }


def test_a_shard_killed_mid_burst_loses_and_duplicates_nothing(
    cluster: Cluster, figures: dict[str, Any], ledger: dict[str, Any]
) -> None:
    assert cluster.discord is not None
    victim = cluster.bots[1]
    guild1 = cluster.discord.guilds[1].guild_id
    known = {row["id"] for row in cluster.flags()}

    def new_flags() -> list[dict[str, Any]]:
        return [row for row in cluster.flags() if row["id"] not in known and row["guild_id"] == guild1]

    with ThreadPoolExecutor(1) as sender:
        sending = sender.submit(send_burst, cluster, 400, "K", pause_every=10, pause_s=0.1)
        poll_until_blocking(lambda: len(new_flags()) >= 10, 60, "shard 1 to store 10 flags of the burst")
        victim.kill()
        at_kill = new_flags()
        burst = sending.result()
    assert len(at_kill) < len(burst.on(1).negative), "the burst was over before the kill"
    killed_at = time.monotonic()

    # The other shard's process is unaffected: all of its guild's messages, exactly once.
    settled(cluster, ledger, burst.on(0), 60, "shard 0's part of the burst")

    restarting = time.monotonic()
    restarted = cluster.bots[1] = cluster.bot(1).start()
    restart_s = time.monotonic() - restarting
    # Each flag stored before the kill gets exactly one card: posted by the dead process, or by the restarted
    # one once the dead one's claim has lapsed (after it looked for the card in the mod-log).
    stored = {row["id"] for row in at_kill}
    poll_until_blocking(
        lambda: all(row["modlog_message_id"] for row in cluster.flags() if row["id"] in stored),
        RECOVERY_S, "the flags stored before the kill to be posted",
    )
    recovered_s = time.monotonic() - killed_at
    after = send_burst(cluster, 60, "KR", shards=(1,))
    settled(cluster, ledger, after, 60, "shard 1 to work again after the restart")

    report = cluster.discord.report()
    per_flag = Counter(post["flag_id"] for post in cards(cluster, report))
    assert [flag for flag, count in per_flag.items() if count > 1] == [], "a card was posted twice"
    rows = {row["id"]: row for row in cluster.flags()}
    assert all(per_flag[flag_id] == 1 and rows[flag_id]["modlog_message_id"] for flag_id in stored)
    reactions = Counter({int(m): len(t) for m, t in report["reactions"].items()})
    assert [m for m in burst.shard if reactions[m] > 1] == [], "a message was classified twice"
    ledger["at_most_once"] |= set(burst.shard)  # shard 1's messages sent while it was down are never delivered
    assert not restarted.problems(), restarted.problems()
    figures["sigkill"] = {"flags_stored_at_kill": len(stored), "restart_to_ready_s": round(restart_s, 1),
                          "all_posted_after_kill_s": round(recovered_s, 1)}


def test_a_redis_outage_loses_nothing_and_recovers(
    cluster: Cluster, figures: dict[str, Any], ledger: dict[str, Any]
) -> None:
    assert cluster.redis is not None
    marks = [len(bot.log_text()) for bot in cluster.bots]
    before = send_burst(cluster, 90, "RA")
    settled(cluster, ledger, before, 60, "the messages before the outage")

    cluster.redis.stop()
    down = send_burst(cluster, 90, "RB")
    settled(cluster, ledger, down, 60, "the messages during the Redis outage")
    cluster.redis.start()
    restarted = time.monotonic()
    after = send_burst(cluster, 90, "RC")
    trickle: list[Burst] = []

    def back() -> bool:  # a bot PINGs Redis on its backoff when a lookup finds it down: keep messages coming
        if all("is back after" in log_since(b.log_text(), m) for b, m in zip(cluster.bots, marks, strict=True)):
            return True
        trickle.append(send_burst(cluster, 2, f"RT{len(trickle)}-"))
        return False

    poll_until_blocking(back, 45, "each bot to see Redis back", interval=1.0)
    back_s = time.monotonic() - restarted
    for burst in trickle:
        after = after | burst
    settled(cluster, ledger, after, 60, "the messages after the outage")
    assert cluster.redis.client().dbsize() > 0  # the vectors computed since go to Redis again

    for bot, mark in zip(cluster.bots, marks, strict=True):
        logged = log_since(bot.log_text(), mark)
        assert logged.count("shared embedding cache at") == 2, logged[-3000:]  # one warning, one "back" line
        assert logged.count("is unavailable") == 1 and not bot.problems(), bot.problems()
    figures["redis_outage"] = {"messages": 180 + len(after.shard), "seen_back_after_s": round(back_s, 1)}


def test_a_serve_restart_makes_callers_wait_then_recovers(
    cluster: Cluster, figures: dict[str, Any], ledger: dict[str, Any]
) -> None:
    assert cluster.serve is not None
    marks = [len(bot.log_text()) for bot in cluster.bots]
    stopped = time.monotonic()
    assert cluster.serve.stop() == [], "Ray left processes behind after SIGTERM"
    waiting = send_burst(cluster, 120, "S")  # the model is away: the bots' batches wait and retry
    cluster.serve.start()
    back = time.monotonic()
    settled(cluster, ledger, waiting, 90, "the messages sent while Serve restarted")
    for bot, mark in zip(cluster.bots, marks, strict=True):
        logged = log_since(bot.log_text(), mark)
        assert "is failing" in logged and "answers again" in logged, logged[-3000:]
        assert not bot.problems(), bot.problems()
    figures["serve_restart"] = {"messages": 120, "serve_down_s": round(back - stopped, 1),
                                "all_classified_after_s": round(time.monotonic() - back, 1)}


def test_the_bots_drain_and_nothing_came_late(cluster: Cluster, ledger: dict[str, Any]) -> None:
    """Last: each bot stops cleanly, having handled every message it admitted; then nothing can be reacted to or
    posted any more, and every burst is still exactly once, the opted-out member's message still unclassified."""
    assert cluster.discord is not None
    for bot in cluster.bots:
        assert bot.stop() == 0, bot.log_tail()
        totals = bot.admission_totals()
        assert totals and totals["failed"] == 0 and totals["handled"] == totals["admitted"] > 0, totals
        assert not bot.problems(), bot.problems()
    report = cluster.discord.report()
    for burst in ledger["exactly_once"]:
        check_exactly_once(cluster, burst, report)
    reactions = Counter({int(m): len(times) for m, times in report["reactions"].items()})
    assert [m for m in ledger["never"] if reactions[m]] == [], "an opted-out member was classified"
    assert [m for m in ledger["at_most_once"] if reactions[m] > 1] == [], "a message was classified twice"
    per_flag = Counter(post["flag_id"] for post in cards(cluster, report))
    assert [flag for flag, count in per_flag.items() if count > 1] == [], "a card was posted twice"
