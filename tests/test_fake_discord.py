"""End-to-end checks of the fake Discord server with a real, unpatched discord.py client."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from tests.support.fake_discord import FakeDiscordServer, Seed, seed_default
from tests.support.helpers import REPO_ROOT, poll_until

pytestmark = pytest.mark.timeout(30)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))

Configure = Callable[[commands.Bot], None]


@pytest.fixture
def discord_at_fake(fake_discord: FakeDiscordServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point discord.py at ``fake_discord`` the way the product does (settings URLs), until the test ends."""
    monkeypatch.setattr(discord.http.Route, "BASE", fake_discord.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake_discord.gateway_url))


def make_bot(configure: Configure | None = None) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = True
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
    if configure is not None:
        configure(bot)
    return bot


@asynccontextmanager
async def running(bot: commands.Bot) -> AsyncIterator[commands.Bot]:
    """Run ``bot`` until the block ends; entering waits for ``on_ready``."""
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    bot.add_listener(on_ready)
    task = asyncio.create_task(bot.start("fake-token"))
    ready_wait = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, ready_wait}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # surfaces login/connect errors
        assert ready.is_set(), "bot never became ready"
        yield bot
    finally:
        ready_wait.cancel()
        await bot.close()
        await asyncio.wait_for(task, 10)


async def test_login_ready_and_cache(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    async with running(make_bot()) as bot:
        guild = bot.get_guild(seeded_guild.guild_id)
        assert guild is not None and guild.name == "Mood Test Guild"
        assert {c.name for c in guild.text_channels} == {"general", "random", "mod-log"}
        moderator_role = guild.get_role(seeded_guild.moderator_role_id)
        assert moderator_role is not None and moderator_role.permissions.manage_messages
        assert guild.default_role.id == guild.id
        moderator = guild.get_member(seeded_guild.moderator_id)
        assert moderator is not None and moderator_role in moderator.roles
        assert guild.get_member(seeded_guild.member_id) is not None
        assert bot.user is not None and bot.user.id == fake_discord.bot_user.id
        assert bot.application_id == fake_discord.application_id
        assert guild.me.guild_permissions.send_messages
        with pytest.raises(discord.NotFound):
            await bot.fetch_user(seeded_guild.member_id)  # not modelled: must be reported as unknown
    me = await fake_discord.wait_for_request(lambda r: r.path == "/users/@me", timeout=1)
    assert me.method == "GET" and me.status == 200
    paths = [(r.method, r.path) for r in fake_discord.requests]
    assert ("GET", "/users/@me") in paths and ("GET", "/oauth2/applications/@me") in paths
    assert [r.path for r in fake_discord.unknown_routes] == [f"/users/{seeded_guild.member_id}"]
    assert fake_discord.handler_errors == []


async def test_wrong_token_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscordServer(token="secret") as server:
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        bot = make_bot()
        with pytest.raises(discord.LoginFailure):
            await bot.login("wrong")
        await bot.login("secret")
        await bot.close()
        assert [r.status for r in server.requests_matching("GET", "/users/@me")] == [401, 200]


async def test_messages_commands_and_allowed_mentions(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    seen: list[discord.Message] = []

    def configure(bot: commands.Bot) -> None:
        @bot.listen()
        async def on_message(message: discord.Message) -> None:
            seen.append(message)

        @bot.command()
        async def echo(ctx: commands.Context[commands.Bot], *, text: str) -> None:
            await ctx.send(f"echo {text}", allowed_mentions=discord.AllowedMentions.none())

    async with running(make_bot(configure)):
        sent = await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, f"!echo hi <@{seeded_guild.moderator_id}>"
        )
        reply = await fake_discord.wait_for_message(seeded_guild.general_id, author_id=fake_discord.bot_user.id)
    assert seen[0].id == sent.id and seen[0].content.startswith("!echo hi")
    assert isinstance(seen[0].author, discord.Member) and seen[0].author.id == seeded_guild.member_id
    assert [u.id for u in seen[0].mentions] == [seeded_guild.moderator_id]
    assert reply.content == f"echo hi <@{seeded_guild.moderator_id}>"
    assert reply.allowed_mentions == {"parse": []}
    assert reply.data["mentions"] == []  # nobody pinged under AllowedMentions.none()
    assert any(m.id == reply.id for m in seen), "bot's own message is echoed over the gateway like Discord does"


async def test_live_changes_edits_reactions_and_attachments(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    async with running(make_bot()) as bot:
        created = asyncio.ensure_future(bot.wait_for("guild_channel_create", timeout=5))
        joined = asyncio.ensure_future(bot.wait_for("member_join", timeout=5))
        fake_channel = fake_discord.add_channel(seeded_guild.guild_id, "late-channel")
        fake_member = fake_discord.add_member(seeded_guild.guild_id, name="latecomer")
        assert (await created).id == fake_channel.id and (await joined).id == fake_member.user.id

        channel = bot.get_channel(fake_channel.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("draft", file=discord.File(io.BytesIO(PNG), "mood.png"))
        assert await sent.attachments[0].read() == PNG  # served by the fake CDN route
        edited = await sent.edit(content="final", attachments=[])
        await edited.add_reaction("\N{THUMBS UP SIGN}")
        fetched = await channel.fetch_message(sent.id)
        stored = fake_discord.message(sent.id)
        assert stored is not None and stored.content == "final" and stored.files == []
        assert fetched.reactions[0].emoji == "\N{THUMBS UP SIGN}" and fetched.reactions[0].me
        await fetched.delete()
        with pytest.raises(discord.NotFound):
            await channel.fetch_message(sent.id)
    assert fake_discord.messages_in(fake_channel.id) == [] and stored.deleted
    assert fake_discord.unknown_routes == [] and fake_discord.handler_errors == []


async def test_edits_and_deletions_reach_the_raw_listeners(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    async with running(make_bot()) as bot:
        sent = [await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, f"m{i}")
                for i in range(4)]
        edited = asyncio.ensure_future(bot.wait_for("raw_message_edit", timeout=5))
        await fake_discord.edit_message(sent[0], {"content": "m0, edited"})
        edit = await edited
        assert edit.message.content == "m0, edited" and edit.message.edited_at is not None
        deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
        await fake_discord.delete_message(sent[1])
        assert (await deleted).message_id == sent[1].id
        bulk = asyncio.ensure_future(bot.wait_for("raw_bulk_message_delete", timeout=5))
        channel = bot.get_channel(seeded_guild.general_id)
        assert isinstance(channel, discord.TextChannel)
        await channel.delete_messages([discord.Object(sent[2].id), discord.Object(sent[3].id)])
        event = await bulk
        assert event.message_ids == {sent[2].id, sent[3].id} and event.guild_id == seeded_guild.guild_id
    assert fake_discord.messages_in(seeded_guild.general_id) == [sent[0]]
    assert fake_discord.unknown_routes == [] and fake_discord.handler_errors == []


def configure_app_commands(bot: commands.Bot, guild_id: int) -> None:
    guild = discord.Object(guild_id)

    @bot.tree.command(name="mood", description="Mood of a text", guild=guild)
    async def mood(interaction: discord.Interaction, text: str, chart: bool = False) -> None:
        await interaction.response.send_message(f"mood of {text!r}: positive", ephemeral=True)
        if chart:
            await interaction.followup.send(file=discord.File(io.BytesIO(PNG), "chart.png"), ephemeral=True)

    group = app_commands.Group(name="moodof", description="Mood of someone", guild_ids=[guild_id])

    @group.command(name="member", description="Mood of a member")
    async def member_mood(interaction: discord.Interaction, who: discord.Member) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(f"{who.display_name} has roles {len(who.roles)}")

    bot.tree.add_command(group)

    @bot.tree.context_menu(name="Analyze message", guild=guild)
    async def analyze(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(f"analyzed {message.id}: {message.content}", ephemeral=True)

    async def setup_hook() -> None:
        await bot.tree.sync(guild=guild)

    bot.setup_hook = setup_hook  # type: ignore[method-assign]


async def test_slash_commands_followup_png_and_context_menu(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    async with running(make_bot(lambda b: configure_app_commands(b, seeded_guild.guild_id))):
        synced = {c["name"]: c for c in fake_discord.guild_commands[seeded_guild.guild_id]}
        assert set(synced) == {"mood", "moodof", "Analyze message"} and synced["Analyze message"]["type"] == 3

        handle = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "mood",
            {"text": "great day", "chart": True},
        )
        response = await handle.response()
        assert response.type == 4 and response.ephemeral and response.flags & 64
        assert response.content == "mood of 'great day': positive"
        followup = await handle.followup()
        assert followup.ephemeral and [(f.filename, f.data) for f in followup.files] == [("chart.png", PNG)]
        assert followup.data["attachments"][0]["content_type"] == "image/png"
        assert fake_discord.messages_in(seeded_guild.general_id) == []  # ephemeral messages are not in the channel

        moderator = fake_discord.guilds[seeded_guild.guild_id].members[seeded_guild.moderator_id]
        handle = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "moodof",
            {"who": moderator},
            subcommand="member",
        )
        assert (await handle.response()).type == 5
        final = await handle.wait_original(lambda m: not m.flags & 128)
        assert final.content == "moderator has roles 2" and not final.ephemeral
        assert fake_discord.messages_in(seeded_guild.general_id) == [final]

        target = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "what a lovely day")
        handle = await fake_discord.send_message_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.moderator_id, "Analyze message", target.id
        )
        response = await handle.response()
        assert response.ephemeral and response.content == f"analyzed {target.id}: what a lovely day"
    assert fake_discord.unknown_routes == [] and fake_discord.handler_errors == []


class Panel(discord.ui.View):
    """A persistent view: no timeout, fixed custom ids."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Opt out", custom_id="panel:opt-out", style=discord.ButtonStyle.danger)
    async def opt_out(self, interaction: discord.Interaction, button: discord.ui.Button[Panel]) -> None:
        await interaction.response.send_message(f"opted out {interaction.user.id}", ephemeral=True)


async def test_persistent_view_survives_client_restart(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    async with running(make_bot()) as bot:
        channel = bot.get_channel(seeded_guild.general_id)
        assert isinstance(channel, discord.TextChannel)
        panel = await channel.send("settings", view=Panel())

    def configure(bot: commands.Bot) -> None:
        async def setup_hook() -> None:
            bot.add_view(Panel())

        bot.setup_hook = setup_hook  # type: ignore[method-assign]

    async with running(make_bot(configure)):
        assert fake_discord.gateway.identify_count == 2
        handle = await fake_discord.click_button(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, panel.id, "panel:opt-out"
        )
        response = await handle.response()
    assert response.type == 4 and response.ephemeral and response.content == f"opted out {seeded_guild.member_id}"
    stored = fake_discord.message(panel.id)
    assert stored is not None and stored.components[0]["components"][0]["custom_id"] == "panel:opt-out"


async def test_history_pages_newest_first(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None
) -> None:
    posted = [
        await fake_discord.send_message(seeded_guild.random_id, seeded_guild.member_id, f"m{i}") for i in range(160)
    ]
    async with running(make_bot()) as bot:
        channel = bot.get_channel(seeded_guild.random_id)
        assert isinstance(channel, discord.TextChannel)
        start = len(fake_discord.requests)
        newest = [m async for m in channel.history(limit=150)]
        pages = [r for r in fake_discord.requests[start:] if r.path.endswith("/messages")]
        after = [m async for m in channel.history(limit=20, after=discord.Object(posted[9].id), oldest_first=True)]
        around = await channel.fetch_message(posted[80].id)
    assert [m.content for m in newest] == [f"m{i}" for i in range(159, 9, -1)]
    assert [r.query.get("limit") for r in pages] == ["100", "50"]
    assert pages[1].query["before"] == str(posted[60].id)
    assert [m.content for m in after] == [f"m{i}" for i in range(10, 30)]
    assert around.content == "m80"
    assert [m.content for m in fake_discord.history(seeded_guild.random_id, 4, around=posted[80].id)] == [
        "m81", "m80", "m79", "m78"
    ]


@pytest.mark.parametrize(("status", "is_global"), [(429, False), (429, True), (500, False)])
async def test_rest_faults_are_retried_once(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None, status: int, is_global: bool
) -> None:
    async with running(make_bot()) as bot:
        channel = bot.get_channel(seeded_guild.general_id)
        assert isinstance(channel, discord.TextChannel)
        rule = fake_discord.fail_next(
            status=status, method="POST", path=r"/channels/\d+/messages", retry_after=0.2, is_global=is_global
        )
        sent = await asyncio.wait_for(channel.send("after a fault"), 10)
    assert rule.hits == 1
    posts = fake_discord.requests_matching("POST", r"/channels/\d+/messages")
    assert [r.status for r in posts] == [status, 200]
    assert [m.id for m in fake_discord.bot_messages_in(seeded_guild.general_id)] == [sent.id]


@pytest.mark.parametrize(
    ("abrupt", "code", "resumable"),
    [(True, 1006, True), (False, 4000, True), (False, 4000, False)],
    ids=["abrupt-resume", "close-4000-resume", "invalidated-reidentify"],
)
async def test_gateway_drop_recovers(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, discord_at_fake: None, abrupt: bool, code: int, resumable: bool
) -> None:
    contents: list[str] = []
    marker = asyncio.Event()

    def configure(bot: commands.Bot) -> None:
        @bot.listen()
        async def on_message(message: discord.Message) -> None:
            contents.append(message.content)
            if message.content == "after reconnect":
                marker.set()

        async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
            """discord.py waits 5 s before a non-initial IDENTIFY; skip it to keep the test fast."""

        bot.before_identify_hook = no_identify_delay  # type: ignore[method-assign]

    async with running(make_bot(configure)):
        assert await fake_discord.drop_gateway(abrupt=abrupt, code=code, resumable=resumable) == 1
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "during outage")
        if resumable:
            await fake_discord.wait_until(lambda: fake_discord.gateway.resume_count == 1, timeout=10)
        else:
            await fake_discord.wait_for_connection(timeout=10, identifies=2)
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "after reconnect")
        await asyncio.wait_for(marker.wait(), 10)
    expected = ["during outage", "after reconnect"] if resumable else ["after reconnect"]
    assert contents == expected
    assert fake_discord.gateway.identify_count == (1 if resumable else 2)


async def test_standalone_process_with_control_api(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.fake_discord", "--port", "0", "--print-urls",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        monkeypatch.setattr(discord.http.Route, "BASE", info["api_base"])
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(info["gateway_url"]))
        guild = info["guilds"][0]
        general, member = guild["channels"]["general"], guild["members"]["alice"]
        control = info["control_url"]

        def configure(bot: commands.Bot) -> None:
            configure_app_commands(bot, int(guild["id"]))

            @bot.command()
            async def ping(ctx: commands.Context[commands.Bot]) -> None:
                await ctx.reply("pong", mention_author=False)

        async with running(make_bot(configure)) as bot, aiohttp.ClientSession() as http:
            ping = {"channel_id": general, "author_id": member, "content": "!ping"}
            async with http.post(f"{control}/messages", json=ping) as resp:
                sent = (await resp.json())["data"]
            payload = {"channel_id": general, "author_id": info["bot_user_id"], "after_id": sent["id"], "timeout": 10}
            async with http.post(f"{control}/wait_message", json=payload) as resp:
                assert resp.status == 200
                reply = await resp.json()
            command = {
                "guild_id": guild["id"], "channel_id": general, "user_id": member, "name": "mood",
                "options": {"text": "sunny"},
            }
            async with http.post(f"{control}/slash_command", json=command) as resp:
                interaction_id = (await resp.json())["id"]
            async with http.get(f"{control}/interactions/{interaction_id}", params={"wait": "5"}) as resp:
                answered = await resp.json()
            resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=10))
            async with http.post(f"{control}/fail_next", json={"method": "POST", "status": 429}) as resp:
                assert resp.status == 200
            async with http.post(f"{control}/drop_gateway", json={"abrupt": True}) as resp:
                assert (await resp.json())["dropped"] == 1
            await resumed
            async with http.post(f"{control}/messages", json=ping) as resp:
                second = (await resp.json())["data"]
            payload["after_id"] = second["id"]
            async with http.post(f"{control}/wait_message", json=payload) as resp:
                assert (await resp.json())["data"]["message_reference"]["message_id"] == second["id"]
            async with http.get(f"{control}/gateway") as resp:
                assert await resp.json() == {"connected": 1, "identify_count": 1, "resume_count": 1}
            async with http.get(f"{control}/requests") as resp:
                log = await resp.json()
        assert reply["data"]["content"] == "pong"
        assert reply["data"]["message_reference"]["message_id"] == sent["id"]
        assert reply["allowed_mentions"]["replied_user"] is False
        assert answered["callback"]["type"] == 4 and answered["callback"]["flags"] == 64
        assert answered["original"]["ephemeral"] and "sunny" in answered["original"]["data"]["content"]
        assert log["unknown_routes"] == [] and log["handler_errors"] == []
        posts = [r["status"] for r in log["requests"] if r["method"] == "POST" and r["path"].endswith("/messages")]
        assert posts == [200, 429, 200]
    finally:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10)


async def test_shards_receive_only_their_guilds(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeDiscordServer(shard_count=2, max_concurrency=2) as server:
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
        guilds = [seed_default(server, name=f"Guild {shard}", shard=shard) for shard in (0, 1)]
        assert [(g.guild_id >> 22) % 2 for g in guilds] == [0, 1]
        seen: dict[int, list[int]] = {0: [], 1: []}
        events: dict[int, int] = {0: 0, 1: 0}  # gateway dispatches each client has read

        def sharded(shard: int) -> commands.AutoShardedBot:
            intents = discord.Intents.default()
            intents.message_content = True
            bot = commands.AutoShardedBot(
                command_prefix="!", intents=intents, shard_ids=[shard], shard_count=2, guild_ready_timeout=0.05
            )

            @bot.listen()
            async def on_message(message: discord.Message) -> None:
                seen[shard].append(message.id)

            @bot.listen()
            async def on_socket_event_type(event_type: str) -> None:
                events[shard] += 1

            return bot

        def read_everything_sent() -> bool:
            """Each client has read every dispatch its session was sent (``seq`` numbers them all), so a wrongly
            routed copy would be in its message cache by now."""
            sessions = {session.shard[0]: session.seq for session in server.gateway.connected}
            return sessions.keys() == {0, 1} and all(events[shard] == seq for shard, seq in sessions.items())

        async with running(sharded(0)) as first, running(sharded(1)) as second:
            assert [g.id for g in first.guilds] == [guilds[0].guild_id]
            assert [g.id for g in second.guilds] == [guilds[1].guild_id]
            sent = [await server.send_message(g.general_id, g.member_id, "hello shard") for g in guilds]
            await poll_until(lambda: len(seen[0]) + len(seen[1]) >= 2, 5, "both messages")
            await poll_until(read_everything_sent, 5, "each client to read all its session was sent")
            assert [m.id for m in first.cached_messages] == [sent[0].id]
            assert [m.id for m in second.cached_messages] == [sent[1].id]
        assert seen == {0: [sent[0].id], 1: [sent[1].id]}
        assert [shard for _, *shard in server.gateway.identifies] == [[0, 2], [1, 2]]

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.api_base}/gateway/bot", headers={"Authorization": "Bot x"}) as resp:
                gateway = await resp.json()
            assert gateway["shards"] == 2 and gateway["session_start_limit"]["max_concurrency"] == 2
            async with http.ws_connect(server.gateway_url) as ws:
                await ws.receive_json()  # HELLO
                await ws.send_json({"op": 2, "d": {"token": "x", "intents": 0, "shard": [2, 2], "properties": {}}})
                await ws.receive()
                assert ws.close_code == 4010  # invalid shard
