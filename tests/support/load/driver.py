"""The load run: bursts of distinct messages across many channels through the real bot.

Eligible messages are those of members who did not opt out (one simulated member did). Every
load channel is in live mode, so each classification is visible as exactly one reaction; the
guild's mod-log receives a card per flag. Latencies are measured inside the fake server with one
clock: MESSAGE_CREATE dispatch -> reaction (classification) and -> flag card posted.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.encoders.bundled import MINILM
from classifier.heads.logistic import LogisticHead
from tests.support.helpers import pings_nobody, poll_until_blocking
from tests.support.load.harness import (
    BotProcess,
    FakeServer,
    GuildSetup,
    flag_posts,
    make_text,
    percentile,
    prepare_store,
    read_flags,
)

VECTOR_BYTES = LogisticHead.load(MINILM.head_path).dim * 4  # float32 features of the shipped head's encoder


class BotFailedError(RuntimeError):
    """The bot logged an error or a traceback: waiting on is pointless."""


@dataclass
class LoadResult:
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)


def run_load(
    workdir: Path,
    *,
    messages: int = 10_000,
    channels: int = 50,
    burst: int = 500,
    gap_s: float = 1.0,
    negative_every: int = 3,
    max_rss_mb: float = 2500.0,
    drain_timeout_s: float | None = None,
    distinct_texts: int | None = None,
    bot_env: dict[str, str] | None = None,
    edits: int = 0,
    log: Any = print,
) -> LoadResult:
    """Start server and bot, send ``messages`` in bursts of ``burst``, verify, stop; always cleans up.

    ``distinct_texts`` (a multiple of ``negative_every``) repeats that many texts, so that after the first of each the
    model answers from its cache and the burst loads the store and the event loop instead. ``bot_env`` adds to the
    bot's environment (e.g. a small ``MOODBOT_DATABASE_POOL_SIZE``). The wait for the
    classifications ends early when the bot logs an error: a message it failed on would never come.

    ``edits`` positive messages are then edited once everything is classified: a third keep their text (Discord sends
    the update anyway), a third take another message's text (the embedding cache answers), a third become a new
    negative text (the model reads it, the reaction follows, and it is flagged like a new message).
    """
    if distinct_texts is not None and distinct_texts % negative_every:
        raise ValueError(f"distinct_texts={distinct_texts} is not a multiple of negative_every={negative_every}")
    result = LoadResult()
    server = FakeServer(workdir, channels=channels)
    bot = BotProcess(
        server, workdir / "bot" / "data", workdir / "bot" / "cache", workdir / "bot.log", extra_env=bot_env or {}
    )
    try:
        opted_out = server.users[-1]
        prepare_store(
            bot.data_dir / "moodbot.sqlite3",
            server.guild_id,
            GuildSetup(server.mod_log, live_channels=[*server.load_channels, server.probe], opted_out=[opted_out]),
        )
        started = time.monotonic()
        bot.start()
        result.figures["startup_s"] = round(time.monotonic() - started, 1)
        rss_idle = bot.peak_rss
        log(
            f"bot ready in {result.figures['startup_s']} s (rss {rss_idle / 2**20:.0f} MiB); "
            f"sending {messages} messages"
        )

        plan = []
        for index in range(messages):
            negative = index % negative_every == 0
            plan.append(
                (
                    server.load_channels[index % channels],
                    server.users[(index // channels) % len(server.users)],
                    make_text(index % (distinct_texts or messages), negative, "L"),
                    negative,
                )
            )
        sent_ids: list[int] = []
        t0 = time.monotonic()
        for start in range(0, messages, burst):
            chunk = plan[start : start + burst]
            sent_ids += server.send_many([(c, a, t) for c, a, t, _ in chunk])
            if start + burst < messages:
                time.sleep(gap_s)
        send_s = time.monotonic() - t0
        eligible = {mid for mid, (_, author, _, _) in zip(sent_ids, plan, strict=True) if author != opted_out}
        negative_ids = {
            mid for mid, (_, author, _, neg) in zip(sent_ids, plan, strict=True) if neg and author != opted_out
        }
        log(f"sent in {send_s:.1f} s; waiting for {len(eligible)} classifications and {len(negative_ids)} flags")

        timeout = drain_timeout_s or max(120.0, messages / 10)

        def drained() -> dict[str, Any] | None:
            if problems := bot.problems():
                raise BotFailedError(f"the bot logged {len(problems)} errors while draining: {problems[:3]}")
            report = server.report()
            done = sum(1 for m in eligible if str(m) in report["reactions"])
            posts = len(flag_posts(report, server.mod_log))
            return report if done >= len(eligible) and posts >= len(negative_ids) else None

        try:
            report = poll_until_blocking(
                drained, timeout, "every message classified and every flag posted", interval=1.0
            )
        except (TimeoutError, BotFailedError) as error:
            result.failures.append(str(error))
            report = server.report()
        edited: set[int] = set()
        to_negative: set[int] = set()
        if edits and not result.failures:
            edited, to_negative = _edit_phase(server, bot, plan, sent_ids, eligible, negative_ids, edits, result, log)
        negative_ids |= to_negative
        time.sleep(1.0)  # let any duplicate show up
        report = server.report()
        flags = read_flags(bot.data_dir / "moodbot.sqlite3")

        # classification: exactly once per eligible message, never for the opted-out member
        reactions = report["reactions"]
        counts = Counter({m: len(reactions.get(str(m), [])) for m in sent_ids})
        result.check(
            all(counts[m] == 1 for m in eligible - edited) and all(counts[m] >= 1 for m in edited),
            f"classified != once: {sum(counts[m] == 0 for m in eligible)} missing, "
            f"{sum(counts[m] > 1 for m in eligible - edited)} unedited more than once",
        )
        result.check(all(counts[m] >= 2 for m in to_negative), "a reaction did not follow its message's edit")
        result.check(
            all(counts[m] == 0 for m in set(sent_ids) - eligible), "an opted-out member's message was classified"
        )

        # flags: rows == negative eligible messages, complete, each posted exactly once, post id recorded
        flagged = Counter(int(f["message_id"]) for f in flags)
        result.check(
            set(flagged) == negative_ids,
            f"flag rows: {len(negative_ids - set(flagged))} negative messages not flagged, "
            f"{len(set(flagged) - negative_ids)} wrongly flagged",
        )
        result.check(all(v == 1 for v in flagged.values()), "a message has several flag rows")
        incomplete = [f["id"] for f in flags if not _complete(f)]
        result.check(not incomplete, f"incomplete flag rows: {incomplete[:10]}")
        posts = flag_posts(report, server.mod_log)
        per_message = Counter(int(p["flagged_message_id"]) for p in posts)
        result.check(
            set(per_message) == set(flagged),
            f"posted cards vs rows: {len(set(flagged) - set(per_message))} rows never posted, "
            f"{len(set(per_message) - set(flagged))} cards without a row",
        )
        duplicates = {m: n for m, n in per_message.items() if n > 1}
        result.check(not duplicates, f"{len(duplicates)} flags posted more than once")
        post_ids = {int(p["id"]) for p in posts}
        result.check(
            all(f["modlog_message_id"] in post_ids for f in flags),
            "a flag row's modlog_message_id is not a posted card",
        )
        pinging = [p["id"] for p in report["bot_posts"] if not pings_nobody(p)]
        result.check(not pinging, f"{len(pinging)} bot messages could ping (allowed_mentions not none)")

        # latency and throughput (server clock)
        created = {int(k): v for k, v in report["created_at"].items()}
        classify_lat = [reactions[str(m)][0] - created[m] for m in eligible if str(m) in reactions]
        flag_lat = [
            p["t"] - created[int(p["flagged_message_id"])] for p in posts if int(p["flagged_message_id"]) in created
        ]
        first = min(created[m] for m in eligible)
        last = max((reactions[str(m)][0] for m in eligible if str(m) in reactions), default=first)
        result.figures.update(
            messages=messages,
            channels=channels,
            burst=burst,
            eligible=len(eligible),
            flags=len(flags),
            flag_cards=len(posts),
            send_seconds=round(send_s, 2),
            processing_seconds=round(last - first, 2),
            messages_per_s=round(len(classify_lat) / max(last - first, 1e-9), 1),
            classify_p50_s=round(percentile(classify_lat, 50), 3),
            classify_p99_s=round(percentile(classify_lat, 99), 3),
            flag_post_p50_s=round(percentile(flag_lat, 50), 3),
            flag_post_p99_s=round(percentile(flag_lat, 99), 3),
            flag_post_max_s=round(max(flag_lat, default=float("nan")), 3),
            rss_idle_mib=round(rss_idle / 2**20),
            rss_peak_mib=round(bot.peak_rss / 2**20),
            rest_statuses=report["statuses"],
            fake_server_errors=report["handler_errors"],
            unknown_routes=report["unknown_routes"],
        )
        result.check(bot.peak_rss / 2**20 <= max_rss_mb, f"peak RSS {bot.peak_rss / 2**20:.0f} MiB > {max_rss_mb} MiB")
        result.check(
            not report["handler_errors"] and not report["unknown_routes"],
            "the fake server saw errors or unknown routes",
        )

        code = bot.stop()
        result.figures["exit_code"] = code
        result.figures.update(bot.closing_figures())
        if edits:
            _edit_figures(bot.admission_totals(), len(to_negative), result)
        result.check("loop_lag_max_ms" in result.figures, "the bot logged no event loop lag when it closed")
        result.check(code == 0, f"the bot exited with {code} on SIGTERM")
        problems = bot.problems()
        result.check(not problems, f"errors/tracebacks in the bot's log: {problems[:5]}")
        lagging = bot.gateway_warnings()
        result.check(not lagging, f"the gateway fell behind: {lagging[:3]}")
    except Exception as error:  # report what we have, never leave processes behind
        result.failures.append(f"{error.__class__.__name__}: {error}")
    finally:
        bot.kill()
        server.close()
    result.figures["log"] = str(bot.log_path)
    return result


def _edit_phase(
    server: FakeServer,
    bot: BotProcess,
    plan: list[tuple[int, int, str, bool]],
    sent_ids: list[int],
    eligible: set[int],
    negative_ids: set[int],
    edits: int,
    result: LoadResult,
    log: Any,
) -> tuple[set[int], set[int]]:
    """Edit the last ``edits`` eligible positive messages (see :func:`run_load`) and wait until every one edited into a
    negative text is flagged and has its new reaction; returns the edited messages and those edited into negatives."""
    positive = [
        (mid, text) for mid, (_, _, text, neg) in zip(sent_ids, plan, strict=True) if mid in eligible and not neg
    ]
    if 2 * edits > len(positive):
        raise ValueError(f"{edits} edits need {2 * edits} positive messages (half edited, half lending their text)")
    chosen = positive[-edits:]
    seen_texts = [text for _, text in positive[: len(positive) - edits]]
    batch, to_negative = [], set()
    for index, (mid, text) in enumerate(chosen):
        kind = index % 3
        if kind == 0:
            batch.append((mid, text))
        elif kind == 1:
            batch.append((mid, seen_texts[index % len(seen_texts)]))
        else:
            batch.append((mid, make_text(index, True, "E")))
            to_negative.add(mid)
    t0 = time.monotonic()
    done = server.edit_many(batch)
    result.figures["edits_sent"] = done
    log(f"edited {done} messages in {time.monotonic() - t0:.1f} s; waiting for {len(to_negative)} new flags")

    def followed() -> bool | None:
        if problems := bot.problems():
            raise BotFailedError(f"the bot logged {len(problems)} errors after the edits: {problems[:3]}")
        report = server.report()
        reacted = all(len(report["reactions"].get(str(m), [])) >= 2 for m in to_negative)
        return reacted and len(flag_posts(report, server.mod_log)) >= len(negative_ids) + len(to_negative) or None

    try:
        poll_until_blocking(followed, max(120.0, edits / 10), "every edit followed", interval=1.0)
    except (TimeoutError, BotFailedError) as error:
        result.failures.append(str(error))
    result.figures["edits_followed_s"] = round(time.monotonic() - t0, 2)
    return {mid for mid, _ in chosen}, to_negative


def _edit_figures(totals: dict[str, int], new_texts: int, result: LoadResult) -> None:
    """What the edits cost, from the bot's own counters: admitted, read by the model, answered by the cache."""
    admitted, classified, cached = (totals.get(k, -1) for k in ("edits", "edits_classified", "edits_cached"))
    result.figures.update(edits_admitted=admitted, edits_classified=classified, edits_cached=cached)
    sent = result.figures["edits_sent"]
    result.check(classified == new_texts, f"{classified} edits read by the model, expected the {new_texts} new texts")
    result.check(admitted == classified + cached <= sent, f"edit counters {totals} do not add up to {sent} edits")


#: The flag columns a stored flag must have filled in, whatever happens to the process that wrote it.
FLAG_REQUIRED = (
    "guild_id",
    "channel_id",
    "message_id",
    "author_id",
    "p_negative",
    "excerpt",
    "created_at",
    "status",
    "vector",
    "namespace",
)


def flag_row_complete(row: dict[str, Any]) -> bool:
    """Whether a stored flag row is whole: every required column set, an excerpt, a full feature vector."""
    filled = all(row[k] is not None for k in FLAG_REQUIRED)
    return filled and bool(row["excerpt"]) and len(row["vector"]) == VECTOR_BYTES


def _complete(flag: dict[str, Any]) -> bool:
    return flag_row_complete(flag) and 0.0 <= flag["p_negative"] <= 1.0 and flag["modlog_message_id"] is not None
