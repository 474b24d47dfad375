"""Logging in with Discord in a real browser: the OAuth2 round trip, the one-time ``state``, a new session at login,
cookie flags, same-site redirects only, and permissions read live at every request."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from playwright.async_api import Page

from bot.dashboard.app import SESSION_COOKIE
from bot.store import FlagStatus, Store
from tests.support.dashboard import add_flags, csrf_token, post_form, screenshot
from tests.support.fake_discord.oauth import CLIENT_SECRET
from tests.support.helpers import MOODBOT, REPO_ROOT, TOKEN, WAIT, clean_environ, free_port

pytestmark = pytest.mark.timeout(120)


def base_of(service) -> str:
    return f"http://127.0.0.1:{service.dashboard.port}"


def session_cookie(cookies: list[dict]) -> dict:
    return next(cookie for cookie in cookies if cookie["name"] == SESSION_COOKIE)


async def test_login_round_trip(
    chromium, start_dashboard, dashboard_settings, fake_discord, seeded_guild, tmp_path
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    settings_path = f"/g/{seeded_guild.guild_id}/settings"
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            await page.goto(base + "/login?next=" + settings_path)  # the state is set before Discord is asked
            await page.context.clear_cookies()
            await page.goto(base + settings_path)  # not logged in: through Discord and back to this page
            landed = page.url
            cookies = await page.context.cookies()
            await page.goto(base + "/")
            guilds = await page.locator(".guilds li a").all_inner_texts()
            await screenshot(page, tmp_path, "picker")
            await page.goto(base + "/login?next=//evil.example/phish")
            offsite = page.url
            return {"landed": landed, "cookie": session_cookie(cookies), "guilds": guilds, "offsite": offsite}

        seen = await chromium.run(steps)
    assert seen["landed"] == base + settings_path
    assert seen["guilds"] == ["Mood Test Guild"]
    assert seen["offsite"] == base + "/"  # a redirect target after login is a path on this site, nothing else
    cookie = seen["cookie"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # Secure: https only
    assert fake_discord.oauth.codes == {}  # every code was exchanged, once
    key = base64.urlsafe_b64decode(dashboard_settings.dashboard.session_key)
    session = json.loads(Fernet(base64.urlsafe_b64encode(key)).decrypt(cookie["value"].encode()))["session"]
    assert session["user_id"] == seeded_guild.moderator_id and seeded_guild.guild_id in session["guild_ids"]
    tokens = list(fake_discord.oauth.tokens)
    assert tokens and not any(token in json.dumps(session) for token in tokens)  # the access token was dropped


async def test_a_forged_missing_or_replayed_state_is_refused(
    chromium, start_dashboard, fake_discord, seeded_guild
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    async with start_dashboard() as service:
        base = base_of(service)

        async def victim(page: Page) -> str:
            """Another browser starts a login; its state and the code Discord gives it are what an attacker gets."""
            started = await page.request.get(base + "/login", max_redirects=0)
            authorize = await page.request.get(started.headers["location"], max_redirects=0)
            return authorize.headers["location"]

        stolen_callback = await chromium.run(victim)

        async def attacker(page: Page) -> dict:
            answers = {}
            await page.goto(base + "/login", wait_until="commit")  # this browser has a state of its own
            queries = {"forged": "code=abc&state=forged", "missing": "code=abc"}
            queries["other session"] = urlsplit(stolen_callback).query
            for name, query in queries.items():
                response = await page.goto(f"{base}/oauth/callback?{query}")
                answers[name] = (response.status, await page.locator("#error-message").inner_text())
            await page.goto(base + "/")  # a real login in this browser still works afterwards
            answers["after"] = (200, page.url)
            replay = await page.request.get(stolen_callback, max_redirects=0)
            answers["replayed"] = (replay.status, "")
            return answers

        answers = await chromium.run(attacker)
    for name in ("forged", "missing", "other session"):
        status, message = answers[name]
        assert status == 400 and "Login refused" in message, (name, answers[name])
    assert answers["replayed"][0] == 400  # the state is one-time and bound to its own session
    assert answers["after"][1] == base + "/"
    assert parse_qs(urlsplit(stolen_callback).query)["code"][0] in fake_discord.oauth.codes  # never exchanged


async def test_a_member_without_permission_sees_nothing(chromium, start_dashboard, fake_discord, seeded_guild) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.member_id
    guild = seeded_guild.guild_id
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> dict:
            await page.goto(base + "/")
            picker = await page.locator("main").inner_text()
            pages = {}
            for path in ("", "/queue", "/settings", "/audit", "/history.json", "/chart.png"):
                response = await page.goto(f"{base}/g/{guild}{path}")
                pages[path] = (response.status, await page.locator("#error-message").inner_text())
            review = await post_form(
                page, base, f"/g/{guild}/flags/1/review",
                {"csrf_token": await csrf_token(page), "action": "confirm", "seen": "open"},
            )
            return {"picker": picker, "pages": pages, "review": review.status}

        seen = await chromium.run(steps)
    assert "None of your servers" in seen["picker"]
    assert seen["pages"]["/queue"] == (403, "You need the Manage Messages permission in at least one channel of "
                                              "this server.")
    for path in ("", "/settings", "/audit", "/history.json", "/chart.png"):
        assert seen["pages"][path] == (403, "You need the Manage Server permission in this server."), path
    assert seen["review"] == 404  # there is no flag 1 in this guild: nothing to tell a non-moderator


async def test_losing_the_permission_takes_effect_on_the_next_click(
    chromium, start_dashboard, fake_discord, seeded_guild
) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    moderator = fake_discord.guilds[seeded_guild.guild_id].members[seeded_guild.moderator_id]
    async with start_dashboard() as service:
        base = base_of(service)
        settings_url = f"{base}/g/{seeded_guild.guild_id}/settings"

        async def both(page: Page) -> tuple[int, int]:
            first = (await page.goto(settings_url)).status
            moderator.roles.clear()  # an admin takes the role away while the page is open
            return first, (await page.reload()).status

        statuses = await chromium.run(both)
    assert statuses == (200, 403)


async def test_the_dashboard_runs_as_its_own_process(chromium, fake_discord, seeded_guild, tmp_path) -> None:
    """``moodbot dashboard``: no gateway connection, Discord over REST with the bot token, the bot's database."""
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    data_dir = tmp_path / "var"
    [flag] = add_flags(data_dir / "moodbot.sqlite3", seeded_guild.guild_id, seeded_guild.general_id,
                       seeded_guild.member_id, ["you are all terrible"])
    port = free_port()
    env = {**clean_environ(), "DISCORD_TOKEN": TOKEN, "DISCORD_API_BASE": fake_discord.api_base,
           "MOODBOT_DATA_DIR": str(data_dir), "MOODBOT_DASHBOARD_PORT": str(port),
           "DISCORD_CLIENT_SECRET": CLIENT_SECRET, "MOODBOT_LOG_LEVEL": "info"}
    process = await asyncio.create_subprocess_exec(
        str(MOODBOT), "--env-file", os.devnull + ".absent", "dashboard", env=env, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async def listening() -> None:
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    return
                except OSError:
                    assert process.returncode is None, "moodbot dashboard exited"
                    await asyncio.sleep(0.1)

        await asyncio.wait_for(listening(), 4 * WAIT)

        async def steps(page: Page) -> list[str]:
            await page.goto(f"{base}/g/{seeded_guild.guild_id}/queue")
            await page.get_by_role("button", name="Dismiss").click()
            await page.locator("#flags .note").wait_for()
            return await page.locator("#flags .note").all_inner_texts()

        notes = await chromium.run(steps)
    finally:
        process.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(process.communicate(), WAIT))[0].decode(errors="replace")
    assert notes == [f"Flag #{flag.id} dismissed."], output
    assert process.returncode == 0, output
    assert TOKEN not in output and CLIENT_SECRET not in output and "dashboard listening on" in output
    assert fake_discord.gateway.identify_count == 0  # it never opened a gateway connection
    with Store.open_sync(data_dir / "moodbot.sqlite3") as store:
        assert [r.new_status for r in store.reviews(flag.id)] == [FlagStatus.DISMISSED]


async def test_discord_refusing_the_permission_check_shows_an_error(
    chromium, start_dashboard, fake_discord, seeded_guild
) -> None:
    """Without Discord's live answer nothing is shown: a clear error page, then the page works again."""
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    async with start_dashboard() as service:
        base = base_of(service)

        async def steps(page: Page) -> list[tuple[int, str]]:
            await page.goto(base + "/")  # log in first
            fake_discord.fail_next(status=400, method="GET", path=rf"/guilds/{seeded_guild.guild_id}/members/\d+")
            failed = await page.goto(f"{base}/g/{seeded_guild.guild_id}/settings")
            message = await page.locator("#error-message").inner_text()
            again = await page.reload()
            return [(failed.status, message), (again.status, await page.locator("h1").inner_text())]

        seen = await chromium.run(steps)
    assert seen == [(502, "Discord did not answer; please try again in a moment."), (200, "Settings")]
