"""The dashboard's pages in a real browser against the real bot: the overview's numbers and chart (moderation scores
included), the review queue (escaping, paging, the reason filter, another guild's ids, CSRF, a review racing a
Discord button click), settings (flag signals and language pin too, a refused value saving nothing) and the audit
log."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading

import pytest
from playwright.async_api import Page

from bot.store import AsyncStore, FlagStatus, GuildConfig
from bot.store.history import HistoryKey, HistoryStore, MoodCounts, SignalCounts, hour_of
from classifier.flag_policy import Reason
from tests.support.bot import THRESHOLD, click_review, mod_log_posts
from tests.support.dashboard import add_flags, csrf_token, flash_text, post_form, screenshot
from tests.support.fake_discord import seed_default
from tests.support.helpers import NEGATIVE_MESSAGE, WAIT, poll_until

pytestmark = pytest.mark.timeout(150)

XSS = ["<script>window.__xss = 1</script>", '"><img src=x onerror="window.__xss = 2">']


def base_of(service) -> str:
    return f"http://127.0.0.1:{service.dashboard.port}"


async def seed_history(settings, rows: list[tuple[tuple[int, int], int, MoodCounts]]) -> None:
    """``((guild, channel), hour, counts)`` rows straight into the bot's database (before it starts)."""
    store = await AsyncStore.open(settings.database_path)
    try:
        await HistoryStore(store).add([(HistoryKey(*where, hour), counts) for where, hour, counts in rows])
    finally:
        await store.close()


async def test_overview_shows_the_seeded_history(
    chromium, start_dashboard, settings, fake_discord, seeded_guild, tmp_path
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    guild, general, random = seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.random_id
    now = hour_of(dt.datetime.now(dt.UTC))
    await seed_history(settings, [
        ((guild, general), now - 1, MoodCounts(3, 1, 0, 2.7, 0.2, 2, {
            "offensive": SignalCounts(4, 2, 2.4), "threat": SignalCounts(4, 1, 1.0)})),
        ((guild, general), now - 3, MoodCounts(1, 1, 2, 1.0, 1.8, 0, {"offensive": SignalCounts(2, 0, 0.2)})),
        ((guild, random), now - 2, MoodCounts(0, 2, 4, 0.3, 3.5)),  # a path without moderation heads
        ((guild, general), now - 10 * 24, MoodCounts(5, 0, 0, 4.5, 0.1, 1)),  # only in the 30-day view
        ((guild + 1, general), now - 1, MoodCounts(9, 9, 9, 9.0, 9.0, 9)),  # another guild: never shown here
    ])
    add_flags(settings.database_path, guild, general, seeded_guild.member_id, ["rude", "ruder"])
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            seen = {}
            for chosen in ("24h", "7d", "30d"):
                await page.goto(f"{base}/g/{guild}?range={chosen}")
                rows = await page.locator("#channels tbody tr").evaluate_all(
                    "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
                )
                chart = await page.locator("img.chart").evaluate("img => img.complete && img.naturalWidth")
                numbers = json.loads(await (await page.request.get(f"{base}/g/{guild}/history.json?range={chosen}"))
                                     .text())
                signals = await page.locator("#signals tbody tr").evaluate_all(
                    "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
                )
                seen[chosen] = {"total": await page.locator("#total-messages").inner_text(), "rows": rows,
                                "harmful": await page.locator("#harmful-messages").inner_text(),
                                "signals": signals, "chart_width": chart, "numbers": numbers}
                if chosen == "7d":
                    await screenshot(page, tmp_path, "overview")
            return seen

        seen = await chromium.run(steps)
    day, week, month = seen["24h"], seen["7d"], seen["30d"]
    assert (day["total"], week["total"], month["total"]) == ("14", "14", "19")
    assert day["rows"] == [  # the most negative channel first: 4 of 8 negative in #general, 0 of 6 in #random
        ["#general", "8", "50.0%", "25.0%", "25.0%", f"{(2.0 - 3.7) / 8:+.2f}", "2", "2"],
        ["#random", "6", "0.0%", "33.3%", "66.7%", f"{(3.5 - 0.3) / 6:+.2f}", "0", "0"],
    ]
    assert month["rows"][0][:2] == ["#general", "13"] and month["rows"][0][6:] == ["3", "2"]
    assert (day["harmful"], month["harmful"]) == ("2", "3")
    assert day["signals"] == [["Offensive", "2", "6", f"{2.6 / 6:.2f}"], ["Threat", "1", "4", "0.25"]]
    def start(hour: int) -> str:
        return f"{dt.datetime.fromtimestamp(hour * 3600, dt.UTC):%Y-%m-%dT%H:%MZ}"

    assert week["numbers"]["hours"] == [
        {"hour": now - 3, "start": start(now - 3), "negative": 1, "neutral": 1, "positive": 2, "mean_mood": 0.2,
         "harmful": 0, "signals": {"offensive": {"scored": 2, "flagged": 0, "mean_score": 0.1}}},
        {"hour": now - 2, "start": start(now - 2), "negative": 0, "neutral": 2, "positive": 4,
         "mean_mood": round((3.5 - 0.3) / 6, 4), "harmful": 0, "signals": {}},
        {"hour": now - 1, "start": start(now - 1), "negative": 3, "neutral": 1, "positive": 0,
         "mean_mood": round((0.2 - 2.7) / 4, 4), "harmful": 2,
         "signals": {"offensive": {"scored": 4, "flagged": 2, "mean_score": 0.6},
                     "threat": {"scored": 4, "flagged": 1, "mean_score": 0.25}}},
    ]
    assert len(month["numbers"]["hours"]) == 4
    assert all(view["chart_width"] == 900 for view in seen.values())  # the PNG loaded (900 px wide)
    assert (tmp_path / "overview.png").stat().st_size > 10_000


async def test_queue_escapes_excerpts_and_pages(
    chromium, start_dashboard, settings, fake_discord, seeded_guild, tmp_path
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    guild = seeded_guild.guild_id
    plain = [f"this is rude message number {n}" for n in range(27)]
    add_flags(settings.database_path, guild, seeded_guild.general_id, seeded_guild.member_id, plain[:20])
    add_flags(settings.database_path, guild, seeded_guild.random_id, seeded_guild.member_id, plain[20:] + XSS)
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            await page.goto(f"{base}/g/{guild}/queue")
            first = await page.locator("#flags tbody tr").count()
            excerpts = await page.locator("td.excerpt").all_inner_texts()
            injected = await page.locator("td.excerpt img, td.excerpt script").count()
            xss = await page.evaluate("window.__xss === undefined")
            await screenshot(page, tmp_path, "queue")
            await page.get_by_text("Next ▶").click()
            second = await page.locator("#flags tbody tr").count()
            await page.goto(f"{base}/g/{guild}/queue")
            await page.select_option("select[name=channel]", str(seeded_guild.random_id))
            await page.get_by_role("button", name="Filter").click()
            filtered = await page.locator("#flags tbody tr").count()
            return {"first": first, "second": second, "excerpts": excerpts, "injected": injected, "xss": xss,
                    "dialogs": dialogs, "filtered": filtered}

        seen = await chromium.run(steps)
    assert (seen["first"], seen["second"], seen["filtered"]) == (25, 4, 9)
    assert seen["excerpts"][:2] == XSS[::-1]  # newest first, shown as the text they are
    assert seen["injected"] == 0 and seen["xss"] and seen["dialogs"] == []


async def test_queue_filters_by_reason_and_shows_why(
    chromium, start_dashboard, settings, fake_discord, seeded_guild, tmp_path
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    guild, general = seeded_guild.guild_id, seeded_guild.general_id
    offensive = [Reason("offensive", "offensive", 0.97), Reason("sentiment", "negative", 0.93)]
    threat = [Reason("threat", "threat", 0.91), Reason("offensive", "offensive", 0.88)]
    add_flags(settings.database_path, guild, general, seeded_guild.member_id, ["you idiot", "idiots all"],
              reasons=offensive)
    add_flags(settings.database_path, guild, general, seeded_guild.member_id, ["i will find you"], reasons=threat)
    add_flags(settings.database_path, guild, general, seeded_guild.member_id, ['sad <b>"day"</b>'])  # sentiment

    async with start_dashboard() as service:
        base = base_of(service)

        async def rows(page: Page) -> list[list[str]]:
            return await page.locator("#flags tbody tr").evaluate_all(
                "rows => rows.map(r => [r.cells[3].innerText, r.cells[4].innerText])"
            )

        async def steps(page: Page) -> dict:
            await page.goto(f"{base}/g/{guild}/queue")
            everything = await rows(page)
            options = await page.locator("select[name=reason] option").all_inner_texts()
            seen = {"all": everything, "options": options}
            for head in ("offensive", "sentiment"):
                await page.select_option("select[name=reason]", head)
                await page.get_by_role("button", name="Filter").click()
                seen[head] = await rows(page)
                if head == "offensive":
                    await screenshot(page, tmp_path, "queue-offensive")
            seen["bad"] = (await page.goto(f"{base}/g/{guild}/queue?reason=spam")).status
            return seen

        seen = await chromium.run(steps)
    assert seen["options"] == ["any", "Negative", "Offensive", "Hate", "Threat", "Self-harm", "Sexual"]
    assert seen["all"] == [  # newest first; the strongest reason first in each row, the excerpt as typed
        ['sad <b>"day"</b>', "Negative 0.90"], ["i will find you", "Threat 0.91 · Offensive 0.88"],
        ["idiots all", "Offensive 0.97 · Negative 0.93"], ["you idiot", "Offensive 0.97 · Negative 0.93"],
    ]
    assert seen["offensive"] == seen["all"][2:]  # by the strongest reason: the threat flag is not an offensive one
    assert seen["sentiment"] == seen["all"][:1]
    assert seen["bad"] == 400


async def test_delete_from_the_dashboard_removes_the_message(
    chromium, start_dashboard, settings, fake_discord, seeded_guild
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    rude = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "you are all idiots")
    [flag] = add_flags(settings.database_path, seeded_guild.guild_id, seeded_guild.general_id,
                       seeded_guild.member_id, [rude.content], message_ids=[rude.id])
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            await page.goto(f"{base}/g/{seeded_guild.guild_id}/queue?status=all")
            await page.get_by_role("button", name="Delete").click()
            await page.locator("#flags .note").wait_for()
            row = page.locator(f"#flag-{flag.id}")
            return {"note": await row.locator(".note").inner_text(),
                    "status": await row.locator(".status").inner_text(),
                    "delete_disabled": await row.get_by_role("button", name="Delete").is_disabled()}

        seen = await chromium.run(steps)
        stored = await service.bot.store.flag(flag.id)
    assert seen == {"note": f"Flag #{flag.id} deleted.", "status": "deleted", "delete_disabled": True}
    assert fake_discord.message(rude.id).deleted and stored.status is FlagStatus.DELETED


async def test_another_guilds_flag_id_is_refused(
    chromium, start_dashboard, settings, fake_discord, seeded_guild
) -> None:
    """The moderator moderates both guilds; a flag of guild B through guild A's URL is still refused."""
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    other = seed_default(fake_discord, name="Other Guild")
    fake_discord.add_member(other.guild_id, seeded_guild.moderator_id, roles=[other.moderator_role_id])
    [theirs] = add_flags(settings.database_path, other.guild_id, other.general_id, other.member_id, ["their flag"])
    [ours] = add_flags(settings.database_path, seeded_guild.guild_id, seeded_guild.general_id,
                       seeded_guild.member_id, ["our flag"])
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            await page.goto(f"{base}/g/{seeded_guild.guild_id}/queue")
            token = await csrf_token(page)
            form = {"csrf_token": token, "action": "confirm", "seen": "open"}
            crossed = await post_form(page, base, f"/g/{seeded_guild.guild_id}/flags/{theirs.id}/review", form)
            listed = await page.locator("td.excerpt").all_inner_texts()
            await page.goto(f"{base}/g/{other.guild_id}/queue")
            listed_other = await page.locator("td.excerpt").all_inner_texts()
            return {"crossed": crossed.status, "listed": listed, "listed_other": listed_other}

        seen = await chromium.run(steps)
        assert seen["crossed"] == 404
        assert seen["listed"] == ["our flag"] and seen["listed_other"] == ["their flag"]
        flag = await service.bot.store.flag(theirs.id)
        assert flag is not None and flag.status is FlagStatus.OPEN and await service.bot.store.reviews(theirs.id) == []
        assert (await service.bot.store.flag(ours.id)).status is FlagStatus.OPEN


async def test_csrf_token_and_origin_are_required(
    chromium, start_dashboard, settings, fake_discord, seeded_guild
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    guild = seeded_guild.guild_id
    [flag] = add_flags(settings.database_path, guild, seeded_guild.general_id, seeded_guild.member_id, ["rude"])
    review_path = f"/g/{guild}/flags/{flag.id}/review"
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            await page.goto(f"{base}/g/{guild}/queue")
            token = await csrf_token(page)
            form = {"action": "confirm", "seen": "open"}
            answers = {
                "no token": await post_form(page, base, review_path, form),
                "wrong token": await post_form(page, base, review_path, {**form, "csrf_token": "x" * 43}),
                "other origin": await post_form(page, base, review_path, {**form, "csrf_token": token},
                                                Origin="http://attacker.test"),
            }
            statuses = {name: answer.status for name, answer in answers.items()}

            async def attacker_site(route) -> None:  # a page on another site that submits the form on load
                await route.fulfill(content_type="text/html", body=(
                    f'<form id="f" method="post" action="{base}{review_path}">'
                    '<input name="action" value="delete"><input name="seen" value="open"></form>'
                    "<script>document.getElementById('f').submit()</script>"))

            await page.route("http://attacker.test/**", attacker_site)
            async with page.expect_navigation(url=f"{base}{review_path}") as navigation:
                await page.goto("http://attacker.test/win-a-prize")
            statuses["cross-site form"] = (await navigation.value).status
            statuses["real"] = (await post_form(page, base, review_path, {**form, "csrf_token": token})).status
            return statuses

        statuses = await chromium.run(steps)
        reviews = await service.bot.store.reviews(flag.id)
    assert statuses == {"no token": 403, "wrong token": 403, "other origin": 403, "cross-site form": 403,
                        "real": 303}
    assert [(r.moderator_id, r.new_status) for r in reviews] == [(seeded_guild.moderator_id, FlagStatus.CONFIRMED)]


async def test_settings_are_saved_and_audited(
    chromium, start_dashboard, settings, fake_discord, seeded_guild, tmp_path
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    guild = seeded_guild.guild_id
    other = seed_default(fake_discord, name="Other Guild")
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            await page.goto(f"{base}/g/{guild}/settings")
            await screenshot(page, tmp_path, "settings")
            await page.select_option("select[name=modlog]", str(seeded_guild.mod_log_id))
            await page.fill("input[name=threshold]", "0.85")
            await page.select_option("select[name=flag_on]", "harmful")
            await page.fill("input[name=language]", "klingon")
            await page.uncheck("input[name=history]")
            await page.check(f"input[name=live][value='{seeded_guild.general_id}']")
            await page.check(f"input[name=exempt][value='{seeded_guild.moderator_role_id}']")
            async with page.expect_navigation() as refused_answer:
                await page.get_by_role("button", name="Save").click()
            refused = {
                "status": (await refused_answer.value).status,
                "summary": await page.locator("#form-error").inner_text(),
                "error": await page.locator("#language-error").inner_text(),
                "kept": [await page.input_value(f"[name={name}]") for name in ("language", "threshold", "flag_on")],
                "stored": await service.bot.store.guild_config(guild),
            }
            await screenshot(page, tmp_path, "settings-refused")
            await page.fill("input[name=language]", "DE")
            await page.get_by_role("button", name="Save").click()
            saved = flash_text(await page.content())
            foreign = await post_form(page, base, f"/g/{guild}/settings", {
                "csrf_token": await csrf_token(page), "modlog": str(other.mod_log_id), "history": "on",
            })
            await page.goto(f"{base}/g/{guild}/audit")
            audit = await page.locator("#audit tbody tr").evaluate_all(
                "rows => rows.map(r => [...r.cells].slice(1).map(c => c.innerText))"
            )
            await screenshot(page, tmp_path, "audit")
            return {"refused": refused, "saved": saved, "foreign": foreign.status, "audit": audit}

        seen = await chromium.run(steps)
        config = await service.bot.store.guild_config(guild)
    refused = seen["refused"]
    assert refused["status"] == 400 and refused["summary"].startswith("Nothing was saved")
    assert refused["error"].startswith("unknown language pin 'klingon': expected 'auto'")
    assert refused["kept"] == ["klingon", "0.85", "harmful"]  # the form as typed, to fix one field
    assert refused["stored"] == GuildConfig(guild)  # nothing of the refused form was stored
    assert seen["saved"] and seen["saved"][0].startswith("Saved: ")
    assert seen["foreign"] == 400  # another guild's channel id is refused, and nothing of that form is stored
    assert (config.modlog_channel_id, config.flag_threshold, config.history) == (seeded_guild.mod_log_id, 0.85, False)
    assert (config.flag_on, config.language) == ({"harmful"}, "de")
    assert config.live_channels == {seeded_guild.general_id} and config.exempt_roles == {seeded_guild.moderator_role_id}
    who = f"moderator ({seeded_guild.moderator_id})"
    assert [row[:2] for row in seen["audit"]] == [[who, "settings"]] * 7
    assert {row[2] for row in seen["audit"]} == {
        "mod-log channel → #mod-log", "flag threshold → 0.85", "flag on → harmful (any moderation head)",
        "language → de", "history → off", "live channel #general added", "exempt role @Moderator added",
    }


async def test_a_dashboard_review_racing_a_discord_click_applies_once(
    chromium, start_dashboard, configure, open_store, fake_discord, seeded_guild
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    guild = seeded_guild.guild_id
    async with start_dashboard() as service:
        base = base_of(service)
        store = service.bot.store
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        # the model call may take long on a busy machine: wait well past WAIT
        await fake_discord.wait_until(lambda: fake_discord.bot_messages_in(seeded_guild.mod_log_id), 4 * WAIT)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        card_path = f"/channels/{seeded_guild.mod_log_id}/messages/{card.id}"
        reader = open_store()
        await poll_until(lambda: [f for f in reader.flags(guild)[0] if f.modlog_message_id], WAIT, "a posted flag")

        ready, go = threading.Event(), threading.Event()

        async def race(page: Page) -> list[str]:
            await page.goto(f"{base}/g/{guild}/queue")
            confirm = page.get_by_role("button", name="Confirm")
            await confirm.wait_for()
            ready.set()
            while not go.is_set():
                await asyncio.sleep(0.001)
            await confirm.click()  # htmx posts it and swaps the flag's row, with a note, in place
            note = page.locator("#flags .note")
            await note.wait_for()
            return [await note.inner_text()]  # a note in the row: only the htmx answer has one (a reload flashes)

        patches_before = len(fake_discord.requests_matching("PATCH", card_path))
        browser = asyncio.ensure_future(chromium.run(race))
        await poll_until(ready.is_set, WAIT, "the queue page in the browser")
        go.set()  # both moderators click now
        interaction = await click_review(fake_discord, seeded_guild, card, "dismiss")
        dashboard_notes = await browser
        await interaction.response(WAIT)
        [stored] = (await store.flags(guild))[0]
        reviews = await store.reviews(stored.id)
    assert len(reviews) == 1  # exactly one of the two clicks was applied
    winner = reviews[0].new_status
    assert stored.status is winner and winner in (FlagStatus.CONFIRMED, FlagStatus.DISMISSED)
    card_now = fake_discord.message(card.id)
    assert card_now.embeds[0]["title"].endswith(winner.value)
    dashboard_patches = len(fake_discord.requests_matching("PATCH", card_path)) - patches_before
    if winner is FlagStatus.CONFIRMED:  # the dashboard won: it updated the card once; the Discord click was told
        assert dashboard_notes[0] == f"Flag #{stored.id} confirmed." and dashboard_patches == 1
        followup = await interaction.followup(0, WAIT)
        assert "already confirmed" in followup.content
    else:  # the button won: the dashboard wrote nothing and said so
        assert dashboard_notes[0].startswith(f"Flag #{stored.id} was already dismissed") and dashboard_patches == 0
