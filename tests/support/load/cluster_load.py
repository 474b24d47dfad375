"""The load run over the scale-out topology: bursts over both shards' guilds, each shard's bot on PostgreSQL.

``python -m tests.support.load --cluster --messages 10000 --channels 50`` starts :class:`tests.support.cluster.Cluster`
(PostgreSQL, Redis, ``moodbot serve``, the fake Discord with 2 shards, a bot process per shard), sends the messages
round robin over the two guilds, and checks what Discord and PostgreSQL show: one reaction per eligible message,
one flag row and one card per negative one, in its own guild's mod-log; no error and no gateway warning in either
bot's log. Latencies are the fake server's clock, as in :func:`tests.support.load.driver.run_load`.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.cluster import Cluster, ClusterOptions
from tests.support.helpers import poll_until_blocking
from tests.support.load.driver import BotFailedError, LoadResult
from tests.support.load.harness import flag_posts, make_text, percentile


def run_cluster_load(
    workdir: Path,
    *,
    messages: int = 10_000,
    channels: int = 50,
    burst: int = 500,
    gap_s: float = 1.0,
    negative_every: int = 3,
    max_rss_mb: float = 2500.0,
    log: Any = print,
) -> LoadResult:
    """Start the cluster, send ``messages`` in bursts of ``burst`` over both shards, verify, stop it all."""
    result = LoadResult()
    cluster = Cluster(workdir, ClusterOptions(channels=channels))
    try:
        started = time.monotonic()
        cluster.start()
        assert cluster.discord is not None
        server, guilds = cluster.discord, cluster.discord.guilds
        result.figures["startup_s"] = round(time.monotonic() - started, 1)
        log(f"cluster ready in {result.figures['startup_s']} s; sending {messages} messages over {len(guilds)} shards")

        plan, shard_of = [], []
        for index in range(messages):
            shard, turn = index % len(guilds), index // len(guilds)
            negative = index % negative_every == 0
            author = cluster.users[(turn // channels) % len(cluster.users)]
            plan.append((guilds[shard].load_channels[turn % channels], author, make_text(index, negative, "C")))
            shard_of.append(shard)
        ids: list[int] = []
        t0 = time.monotonic()
        for start in range(0, messages, burst):
            ids += server.send_many(plan[start : start + burst])
            if start + burst < messages:
                time.sleep(gap_s)
        send_s = time.monotonic() - t0
        eligible = {m for m, (_, author, _) in zip(ids, plan, strict=True) if author != cluster.opted_out}
        negative = {m for index, m in enumerate(ids) if index % negative_every == 0} & eligible
        log(f"sent in {send_s:.1f} s; waiting for {len(eligible)} classifications and {len(negative)} flags")

        def cards(report: dict[str, Any]) -> list[dict[str, Any]]:
            return [post for guild in guilds for post in flag_posts(report, guild.mod_log)]

        def drained() -> dict[str, Any] | None:
            for bot in cluster.bots:
                if problems := bot.problems():
                    raise BotFailedError(f"shard {bot.shard} logged {len(problems)} errors: {problems[:3]}")
            report = server.report()
            reacted = eligible <= {int(m) for m in report["reactions"]}
            carded = negative <= {int(p["flagged_message_id"]) for p in cards(report)}
            return report if reacted and carded else None

        try:
            poll_until_blocking(
                drained, max(120.0, messages / 10), "every message classified and flag posted", interval=1.0
            )
        except (TimeoutError, BotFailedError) as error:
            result.failures.append(str(error))
        time.sleep(1.0)  # let any duplicate show up
        report = server.report()
        rows = [row for row in cluster.flags() if row["message_id"] in set(ids)]

        reactions = Counter({int(m): len(times) for m, times in report["reactions"].items()})
        missing, twice = sum(reactions[m] == 0 for m in eligible), sum(reactions[m] > 1 for m in eligible)
        result.check(not missing and not twice, f"classified != once: {missing} missing, {twice} more than once")
        result.check(not any(reactions[m] for m in set(ids) - eligible), "an opted-out member's message was classified")
        flagged = Counter(row["message_id"] for row in rows)
        result.check(set(flagged) == negative, f"flag rows: {len(negative - set(flagged))} negative messages not "
                     f"flagged, {len(set(flagged) - negative)} wrongly flagged")
        result.check(all(n == 1 for n in flagged.values()), "a message has several flag rows")
        posted = [p for p in cards(report) if int(p["flagged_message_id"]) in set(ids)]
        per_message = Counter(int(p["flagged_message_id"]) for p in posted)
        result.check(set(per_message) == negative, f"{len(negative - set(per_message))} flags never posted")
        result.check(all(n == 1 for n in per_message.values()), "a flag was posted more than once")
        shard_by_id = dict(zip(ids, shard_of, strict=True))
        result.check(
            all(p["channel_id"] == str(guilds[shard_by_id[int(p["flagged_message_id"])]].mod_log) for p in posted),
            "a card was posted to another guild's mod-log",
        )
        result.check({row["modlog_message_id"] for row in rows} == {int(p["id"]) for p in posted},
                     "a flag row does not record its card")

        created = {int(k): v for k, v in report["created_at"].items()}
        classify = [report["reactions"][str(m)][0] - created[m] for m in eligible if str(m) in report["reactions"]]
        carded = [p["t"] - created[int(p["flagged_message_id"])] for p in posted]
        first = min(created[m] for m in eligible)
        last = max((report["reactions"][str(m)][0] for m in eligible if str(m) in report["reactions"]), default=first)
        result.figures.update(
            topology="2 shard processes, PostgreSQL, Redis, moodbot serve",
            messages=messages, channels_per_guild=channels, burst=burst, eligible=len(eligible), flags=len(rows),
            flag_cards=len(posted), per_shard_eligible=[sum(shard_by_id[m] == s for m in eligible) for s in (0, 1)],
            send_seconds=round(send_s, 2), processing_seconds=round(last - first, 2),
            messages_per_s=round(len(classify) / max(last - first, 1e-9), 1),
            classify_p50_s=round(percentile(classify, 50), 3), classify_p99_s=round(percentile(classify, 99), 3),
            flag_post_p50_s=round(percentile(carded, 50), 3), flag_post_p99_s=round(percentile(carded, 99), 3),
            rss_peak_mib=[round(bot.peak_rss / 2**20) for bot in cluster.bots],
            fake_server_errors=report["handler_errors"],
        )
        for bot in cluster.bots:
            code = bot.stop()
            result.check(code == 0, f"shard {bot.shard} exited with {code} on SIGTERM")
            result.figures[f"shard_{bot.shard}"] = bot.closing_figures()
            result.check("loop_lag_max_ms" in bot.closing_figures(), f"shard {bot.shard} logged no loop lag")
            result.check(not bot.problems(), f"errors in shard {bot.shard}'s log: {bot.problems()[:5]}")
            lagging = bot.gateway_warnings()
            result.check(not lagging, f"shard {bot.shard}'s gateway fell behind: {lagging[:3]}")
            result.check(bot.peak_rss / 2**20 <= max_rss_mb, f"shard {bot.shard} peak RSS over {max_rss_mb} MiB")
        result.check(not report["handler_errors"], "the fake server saw errors")
    except Exception as error:  # report what we have, never leave processes behind
        result.failures.append(f"{error.__class__.__name__}: {error}")
    finally:
        cluster.stop()
    result.figures["logs"] = [str(bot.log_path) for bot in cluster.bots]
    return result
