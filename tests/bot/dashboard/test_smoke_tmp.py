from __future__ import annotations

from playwright.async_api import Page

from tests.support.fake_discord import FakeDiscordServer, Seed


async def test_login(chromium, start_dashboard, fake_discord: FakeDiscordServer, seeded_guild: Seed, tmp_path):
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    async with start_dashboard() as service:
        base = f"http://127.0.0.1:{service.dashboard.port}"

        async def steps(page: Page) -> str:
            await page.goto(base + "/")
            await page.screenshot(path=str(tmp_path / "picker.png"))
            await page.goto(f"{base}/g/{seeded_guild.guild_id}")
            await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
            return await page.content()

        html = await chromium.run(steps)
        print(html[:3000])
    print(tmp_path)
