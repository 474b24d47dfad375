"""The store on real databases: an SQLite file and a throwaway PostgreSQL server, the same tests on both.

"Two processes" are two stores with their own engines and connection pools on one database, as two bot processes
would have; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event

from bot.settings import SettingsError, load_settings
from bot.store import (
    AlreadyReviewedError,
    AsyncStore,
    FlaggedAs,
    FlagStatus,
    ReviewAction,
    Store,
    StoreError,
    admin,
    excerpt,
)
from bot.store.engine import BUSY_TIMEOUT_MS, resolve_url
from bot.store.migrate import head_revision
from bot.store.schema import metadata
from classifier.flag_policy import Reason
from tests.support.helpers import clean_environ, run_moodbot
from tests.support.postgres import PostgresServer

NAMESPACE = "encoder-a:fp32"
LEGACY_DUMP = Path(__file__).with_name("legacy_v1.sql")
LEGACY_ROWS = {
    "exempt_roles": 1,
    "flags": 3,
    "guild_channels": 2,
    "guild_settings": 1,
    "optouts": 2,
    "feedback": 2,
    "flag_reviews": 3,
}


def add_flag(
    store: Store, message_id: int, *, guild_id: int = 1, namespace: str = NAMESPACE, seed: int = 0, text: str = "awful"
):
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return store.add_flag(
        guild_id=guild_id,
        channel_id=10,
        message_id=message_id,
        author_id=100,
        p_negative=0.95,
        text=text,
        vector=vector,
        namespace=namespace,
    ), vector


async def add_flags(store: AsyncStore, count: int) -> list[int]:
    flags = [
        await store.add_flag(
            guild_id=1,
            channel_id=10,
            message_id=m,
            author_id=100,
            p_negative=0.95,
            text="bad",
            vector=np.ones(8, np.float32),
            namespace=NAMESPACE,
        )
        for m in range(count)
    ]
    return [flag.id for flag in flags if flag is not None]


def legacy_file(path: Path, dump: str | None = None) -> Path:
    """An SQLite file exactly as moodbot wrote it before Alembic (schema, rows and ``PRAGMA user_version = 1``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as raw:
        raw.executescript(dump or LEGACY_DUMP.read_text())
    raw.close()
    return path


def sqlite_dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as raw:
        lines = list(raw.iterdump())
    raw.close()
    return lines


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'moodbot.sqlite3'}"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open_sync(url) as opened:
        yield opened


@pytest.fixture
async def two_stores(url: str):
    """Two stores on one database, as two bot processes have."""
    first, second = await AsyncStore.open(url), await AsyncStore.open(url)
    yield first, second
    await first.close()
    await second.close()


# schema and migrations


async def test_migrations_create_exactly_the_schema_the_queries_use(url: str) -> None:
    store = await AsyncStore.open(url)
    try:
        async with store.engine.connect() as db:
            differences = await db.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), metadata)
            )
            revision = await db.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
        assert differences == [] and revision == head_revision()
    finally:
        await store.close()


def test_opening_a_current_database_only_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "moodbot.sqlite3"
    Store.open_sync(path).close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process (or the bot, on this thread's loop) is in a write
    try:
        started = time.monotonic()
        with Store.open_sync(path) as store:
            assert store.guild_config(1).auto_flag
        assert time.monotonic() - started < 2.0  # it did not wait for the write lock
    finally:
        writer.execute("ROLLBACK")
        writer.close()


async def test_sqlite_keeps_its_durability_settings(tmp_path: Path) -> None:
    store = await AsyncStore.open(tmp_path / "moodbot.sqlite3")
    try:
        async with store.engine.connect() as db:
            pragmas = [
                (await db.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys")
            ]
        assert pragmas == ["wal", 2, 1]  # synchronous 2 = FULL
    finally:
        await store.close()


async def test_processes_starting_together_on_a_new_database_all_open_it(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    stores = await asyncio.gather(*(AsyncStore.open(url) for _ in range(3)))
    try:
        assert postgres.psql("SELECT version_num FROM alembic_version", url.rsplit("/", 1)[1]) == head_revision()
    finally:
        for store in stores:
            await store.close()


def test_a_schema_from_a_newer_moodbot_is_refused(url: str, postgres: PostgresServer) -> None:
    Store.open_sync(url).close()
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as raw:
            raw.execute("UPDATE alembic_version SET version_num = '9999'")
        raw.close()
    else:
        postgres.psql("UPDATE alembic_version SET version_num = '9999'", url.rsplit("/", 1)[1])
    with pytest.raises(StoreError, match="newer"):
        Store.open_sync(url)


def test_a_pre_alembic_file_with_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = legacy_file(
        tmp_path / "moodbot.sqlite3", LEGACY_DUMP.read_text().replace("user_version = 1", "user_version = 2")
    )
    before = sqlite_dump(path)
    with pytest.raises(StoreError, match="schema version 2, newer"):
        Store.open_sync(path)
    assert sqlite_dump(path) == before


def test_a_file_written_before_alembic_is_adopted_without_loss(tmp_path: Path) -> None:
    path = legacy_file(tmp_path / "var" / "moodbot.sqlite3")
    with Store.open_sync(load_settings({"MOODBOT_DATA_DIR": str(tmp_path / "var")}, None).database) as store:
        config = store.guild_config(111)
        assert (config.modlog_channel_id, config.flag_threshold, config.auto_flag) == (222, 0.75, False)
        assert config.live_channels == {333} and config.disabled_channels == {334} and config.exempt_roles == {444}
        assert store.is_opted_out(555) and store.is_opted_out(1152921504606846976)  # a 61-bit id
        flags, total = store.flags(111)
        assert total == 2 and [f.status for f in flags] == [FlagStatus.DELETED, FlagStatus.CONFIRMED]
        # flags from before reasons were all raised by sentiment's negative, at their p_negative (migration 0006)
        assert all(f.reasons == (Reason("sentiment", "negative", f.p_negative),) for f in flags)
        assert config.flag_on == {"harmful", "negative"} and config.language is None
        assert (
            flags[1].excerpt == "this is awful really"
            and flags[1].created_at.isoformat(timespec="milliseconds") == "2026-11-25T23:05:35.253+00:00"
        )
        assert [(r.moderator_id, r.new_status) for r in store.reviews(1)] == [
            (888, FlagStatus.DISMISSED),
            (889, FlagStatus.CONFIRMED),
        ]
        vectors, labels = store.feedback_examples("enc:fp32")
        assert vectors.shape == (2, 8) and labels.tolist() == [0, 0]
        [unposted] = store.unposted_flags(store.last_flag_id())
        assert unposted.guild_id == 1152921504606846977 and unposted.message_id == 1152921504606846978

        # It keeps working as a current database: ids continue, claims and conditional reviews apply.
        new, _ = add_flag(store, 2000, guild_id=111)
        assert new.id == 4 and store.claim_post(unposted.id, 30) is not None
        with pytest.raises(AlreadyReviewedError):
            store.review_flag(1, 42, ReviewAction.DISMISS)  # it was confirmed (by 889) before the upgrade
        assert store.review_flag(1, 42, ReviewAction.DISMISS, seen=FlagStatus.CONFIRMED).status is FlagStatus.DISMISSED
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    raw.close()


def test_a_failed_adoption_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    broken = LEGACY_DUMP.read_text().replace("CREATE TABLE flag_reviews (", "CREATE TABLE flag_reviews_gone (")
    broken = broken.replace('INSERT INTO "flag_reviews"', 'INSERT INTO "flag_reviews_gone"')
    path = legacy_file(tmp_path / "moodbot.sqlite3", broken)
    before = sqlite_dump(path)
    with pytest.raises(StoreError, match="flag_reviews"):
        Store.open_sync(path)
    assert sqlite_dump(path) == before  # not stamped, not half-migrated


# settings, opt-outs, flags, reviews, feedback (both backends)


def test_guild_settings_default_and_persist(url: str) -> None:
    with Store.open_sync(url, default_threshold=0.8) as store:
        config = store.guild_config(7)
        assert (config.modlog_channel_id, config.flag_threshold, config.auto_flag) == (None, 0.8, True)
        assert not (config.live_channels or config.disabled_channels or config.exempt_roles)
        store.update_guild(7, modlog_channel_id=70, flag_threshold=0.95)
        store.update_guild(7, auto_flag=0)
        store.set_channel(7, 71, "live", True)
        store.set_channel(7, 72, "disabled", True)
        store.set_channel(7, 73, "live", True)
        store.set_channel(7, 73, "live", False)
        store.set_exempt_role(7, 700, True)
        store.set_exempt_role(7, 701, True)
        assert store.set_exempt_role(7, 701, False).exempt_roles == {700}
    with Store.open_sync(url, default_threshold=0.8) as store:
        config = store.guild_config(7)
        assert (config.modlog_channel_id, config.flag_threshold, config.auto_flag) == (70, 0.95, False)
        assert config.live_channels == {71} and config.disabled_channels == {72} and config.exempt_roles == {700}
        assert store.guild_config(8).flag_threshold == 0.8
        assert store.update_guild(7, flag_threshold=None).flag_threshold == 0.8  # back to the default


def test_invalid_settings_write_nothing(store: Store) -> None:
    store.update_guild(7, flag_threshold=0.9)
    with pytest.raises(ValueError, match="between 0.5 and 1.0"):
        store.update_guild(7, flag_threshold=0.2)
    with pytest.raises(ValueError, match="unknown"):
        store.update_guild(7, token="x")
    with pytest.raises(ValueError, match="unknown channel kind"):
        store.set_channel(7, 1, "bogus", True)
    assert store.guild_config(7).flag_threshold == 0.9 and not store.guild_config(7).live_channels


def test_opt_outs(store: Store) -> None:
    store.set_opt_out(5, True)
    store.set_opt_out(5, True)
    store.set_opt_out(6, True)
    store.set_opt_out(6, False)
    assert store.is_opted_out(5) and not store.is_opted_out(6) and not store.is_opted_out(7)


def test_a_message_is_flagged_once_per_guild(store: Store) -> None:
    flag, _ = add_flag(store, 555)
    assert flag is not None and flag.status is FlagStatus.OPEN and flag.modlog_message_id is None
    assert add_flag(store, 555)[0] is None  # a replayed MESSAGE_CREATE
    assert add_flag(store, 555, guild_id=2)[0] is not None
    flags, total = store.flags(1)
    assert total == 1 and flags[0].jump_url == "https://discord.com/channels/1/10/555"
    assert flags[0] == flag and flag.created_at.tzinfo is not None


def test_excerpt_is_short_and_one_line() -> None:
    assert excerpt("a\nb   c") == "a b c"
    cut = excerpt("x" * 1000)
    assert len(cut) == 300 and cut.endswith("…")


def test_unposted_flags_until_posted(store: Store) -> None:
    first, _ = add_flag(store, 1)
    second, _ = add_flag(store, 2)
    assert store.last_flag_id() == second.id
    store.mark_posted(first.id, 99, 1234)
    assert [f.id for f in store.unposted_flags(second.id)] == [second.id]
    assert store.unposted_flags(first.id) == []  # flags raised after start-up are posted by their own handler
    assert store.flag(first.id).modlog_message_id == 1234
    assert store.claim_post(first.id, 30) is None  # posted: nobody may post it again


@pytest.mark.parametrize(
    ("action", "status", "label"),
    [
        (ReviewAction.CONFIRM, FlagStatus.CONFIRMED, 0),
        (ReviewAction.DISMISS, FlagStatus.DISMISSED, 1),
        (ReviewAction.DELETE, FlagStatus.DELETED, 0),
    ],
)
def test_review_records_history_and_feedback(
    store: Store, action: ReviewAction, status: FlagStatus, label: int
) -> None:
    flag, vector = add_flag(store, 1, text="this update is awful")
    reviewed = store.review_flag(flag.id, 42, action)
    assert reviewed.status is status and reviewed.id == flag.id
    [review] = store.reviews(flag.id)
    assert (review.moderator_id, review.action, review.old_status, review.new_status) == (
        42,
        action,
        FlagStatus.OPEN,
        status,
    )
    vectors, labels = store.feedback_examples(NAMESPACE)
    assert vectors.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(vectors, vector[None, :])  # raw float bytes in, the same floats out
    assert labels.tolist() == [label]
    feedback_columns = {column.name for column in metadata.tables["feedback"].columns}
    assert not feedback_columns & {"text", "excerpt"}  # a vector and a label, never the message


def test_relabelling_keeps_one_feedback_row(store: Store) -> None:
    flag, _ = add_flag(store, 1)
    store.review_flag(flag.id, 42, ReviewAction.DISMISS)
    store.review_flag(flag.id, 43, ReviewAction.CONFIRM, seen=FlagStatus.DISMISSED)
    assert [r.new_status for r in store.reviews(flag.id)] == [FlagStatus.DISMISSED, FlagStatus.CONFIRMED]
    assert store.feedback_examples(NAMESPACE)[1].tolist() == [0]
    with pytest.raises(KeyError):
        store.review_flag(999, 42, ReviewAction.CONFIRM)


def test_a_review_of_a_status_already_changed_writes_nothing(store: Store) -> None:
    flag, _ = add_flag(store, 1)
    store.review_flag(flag.id, 42, ReviewAction.CONFIRM)
    with pytest.raises(AlreadyReviewedError) as taken:
        store.review_flag(flag.id, 43, ReviewAction.DISMISS)  # it saw the flag open, before 42's click landed
    assert taken.value.flag.status is FlagStatus.CONFIRMED and taken.value.review.moderator_id == 42
    assert "already confirmed by moderator 42" in str(taken.value)
    assert len(store.reviews(flag.id)) == 1 and store.feedback_examples(NAMESPACE)[1].tolist() == [0]


def edit(store: Store, flag_id: int, edited_at: dt.datetime, text: str, score: float = 0.1, **values: object):
    """Apply an edit scored ``score`` (below the threshold unless ``below_threshold=False``)."""
    reason = Reason("sentiment", "negative", score)
    return store.edit_flag(
        flag_id, edited_at=edited_at, text=text, p_negative=score, vector=np.full(8, score, np.float32),
        namespace=NAMESPACE, reasons=[reason], below_threshold=values.get("below_threshold", True),
    )


def test_an_edit_rescores_the_flag_in_place_and_keeps_what_it_was_first(store: Store) -> None:
    flag, _ = add_flag(store, 1, text="you are an idiot")
    store.mark_posted(flag.id, 99, 1234)
    reviewed = store.review_flag(flag.id, 42, ReviewAction.CONFIRM)
    first_edit = dt.datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    edited = edit(store, flag.id, first_edit, "sorry, I take it back")
    assert (edited.id, edited.status, edited.modlog_message_id) == (flag.id, FlagStatus.CONFIRMED, 1234)
    assert edited.excerpt == "sorry, I take it back" and edited.p_negative == pytest.approx(0.1)
    assert edited.below_threshold and edited.revision == reviewed.revision + 1 == 2
    assert edited.first == FlaggedAs("you are an idiot", 0.95, flag.reasons)
    assert edited.edited_at == first_edit.replace(microsecond=123000)  # stored to the millisecond

    second = edit(store, flag.id, first_edit + dt.timedelta(seconds=5), "you really are an idiot", 0.97,
                  below_threshold=False)
    assert second.excerpt == "you really are an idiot" and not second.below_threshold
    assert second.first == edited.first  # the first edit kept it; later ones leave it
    assert store.flag_of_message(1, 1) == store.flag(flag.id) == second


def test_a_replayed_late_or_unchanged_edit_writes_nothing(store: Store) -> None:
    flag, _ = add_flag(store, 1, text="awful")
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert edit(store, flag.id, at, "fine now") is not None
    assert edit(store, flag.id, at, "fine now") is None  # a replayed MESSAGE_UPDATE
    assert edit(store, flag.id, at - dt.timedelta(seconds=1), "an older edit, handled late") is None
    assert edit(store, flag.id, at + dt.timedelta(seconds=1), "fine now") is None  # same text: an embed update
    assert store.flag(flag.id).revision == 1 and store.flag(flag.id).excerpt == "fine now"
    assert edit(store, 999, at, "no such flag") is None


def test_a_deletion_is_marked_once_and_stops_edits(store: Store) -> None:
    flag, _ = add_flag(store, 1)
    other, _ = add_flag(store, 2)
    [deleted] = store.mark_deleted(1, [1, 3])  # a bulk delete: message 3 was never flagged
    assert deleted.id == flag.id and deleted.deleted_at is not None and deleted.revision == 1
    assert store.mark_deleted(1, [1]) == [] and store.mark_deleted(2, [2]) == []  # marked already; another guild
    assert edit(store, flag.id, dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "edited after it was deleted") is None
    assert store.flag(other.id).deleted_at is None and store.mark_posted(flag.id, 99, 1234) == 1


async def test_of_processes_seeing_one_deletion_or_edit_one_applies_it(two_stores) -> None:
    first, second = two_stores
    ids = await add_flags(first, 10)
    marked = await asyncio.gather(*(store.mark_deleted(1, range(5)) for store in (first, second, first)))
    assert sorted(flag.id for flags in marked for flag in flags) == ids[:5]
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    edits = await asyncio.gather(*(
        store.edit_flag(
            flag_id, edited_at=at, text="edited", p_negative=0.2, vector=np.zeros(8, np.float32), namespace=NAMESPACE,
            reasons=[Reason("sentiment", "negative", 0.2)], below_threshold=True,
        )
        for flag_id in ids[5:] for store in (first, second)
    ))
    assert sorted(flag.id for flag in edits if flag is not None) == ids[5:]
    assert [(await second.latest_review(flag_id)) for flag_id in ids[5:]] == [None] * 5


def test_feedback_examples_by_namespace_and_guild(url: str) -> None:
    with Store.open_sync(url) as store:
        for message_id, guild_id, namespace in [(1, 1, NAMESPACE), (2, 2, NAMESPACE), (3, 1, "other:fp32")]:
            flag, _ = add_flag(store, message_id, guild_id=guild_id, namespace=namespace, seed=message_id)
            store.review_flag(flag.id, 42, ReviewAction.DISMISS)
    with Store.open_sync(url) as store:  # exactly how `moodbot train --feedback` reads it
        vectors, labels = store.feedback_examples(NAMESPACE, None)
        assert vectors.shape == (2, 8) and labels.tolist() == [1, 1]
        assert store.feedback_examples(NAMESPACE, 2)[0].shape == (1, 8)
        empty_vectors, empty_labels = store.feedback_examples("unknown")
        assert len(empty_labels) == 0 and len(empty_vectors) == 0


def test_flags_paging_and_status_filter(store: Store) -> None:
    ids = [add_flag(store, m)[0].id for m in range(12)]
    store.review_flag(ids[0], 42, ReviewAction.CONFIRM)
    page, total = store.flags(1, FlagStatus.OPEN, limit=5, offset=0)
    assert total == 11 and [f.id for f in page] == ids[:0:-1][:5]
    assert store.flags(1, FlagStatus.OPEN, limit=5, offset=10)[0][0].id == ids[1]
    assert [f.id for f in store.flags(1, FlagStatus.CONFIRMED)[0]] == [ids[0]]
    assert store.flags(1, limit=0) == ([], 12)


async def test_the_blocking_store_works_inside_a_running_loop(url: str) -> None:
    with Store.open_sync(url) as store:  # as the end-to-end tests read the bot's database while it runs
        store.set_opt_out(9, True)
        assert store.is_opted_out(9)


def test_the_blocking_store_has_every_public_coroutine_method_of_the_async_one() -> None:
    coroutines = {
        name: member for name, member in inspect.getmembers(AsyncStore)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }
    assert {"change_state", "forget_state", "release_post", "review_flag"} <= coroutines.keys()
    for name, method in coroutines.items():
        if name in ("open", "close"):  # Store.open_sync / the constructor, and Store.close
            continue
        blocking = getattr(Store, name, None)
        assert callable(blocking) and not inspect.iscoroutinefunction(blocking), name
        assert inspect.signature(blocking) == inspect.signature(method), name  # help() shows the real parameters
        assert method.__doc__ is None or inspect.getdoc(method) in blocking.__doc__, name


async def test_the_blocking_store_answers_as_the_async_one(tmp_path: Path) -> None:
    path = tmp_path / "moodbot.sqlite3"
    with Store.open_sync(path) as store:
        async_store = await AsyncStore.open(path)
        try:
            store.update_guild(1, flag_threshold=0.7, language="de")
            assert store.guild_config(1) == await async_store.guild_config(1)
            flag, vector = add_flag(store, 1)
            assert store.claim_post(flag.id, 300) is not None
            assert await async_store.claim_post(flag.id, 300) is None  # the blocking claim holds
            store.release_post(flag.id)
            assert await async_store.claim_post(flag.id, 300) is not None  # given back
            store.review_flag(flag.id, 42, ReviewAction.DISMISS)
            assert store.flags(1, head="sentiment") == await async_store.flags(1, head="sentiment")
            assert store.reviews(flag.id) == await async_store.reviews(flag.id)
            blocking_vectors, blocking_labels = store.feedback_examples(NAMESPACE, 1, "sentiment")
            async_vectors, async_labels = await async_store.feedback_examples(NAMESPACE, 1, "sentiment")
            np.testing.assert_array_equal(blocking_vectors, async_vectors)
            np.testing.assert_array_equal(blocking_labels, async_labels)
            np.testing.assert_array_equal(blocking_vectors, vector[None, :])
            assert store.change_state("mode", "a") is True
            assert await async_store.change_state("mode", "a") is False  # already set, by the blocking call
            store.forget_state("mode", "a")
            assert await async_store.change_state("mode", "a") is True  # forgotten: the next change acts again
        finally:
            await async_store.close()


# several processes on one database


async def test_each_card_has_one_poster_however_many_try(two_stores) -> None:
    first, second = two_stores
    ids = await add_flags(first, 20)
    claims = await asyncio.gather(
        *(store.claim_post(flag_id, 30) for flag_id in ids for store in (first, second, first))
    )
    winners = [claim.id for claim in claims if claim is not None]
    assert sorted(winners) == ids  # exactly one claim per flag

    await second.release_post(ids[0])  # a failed post gives its claim back at once
    assert await first.claim_post(ids[0], 30) is not None
    await first.mark_posted(ids[0], 99, 1234)
    assert await second.claim_post(ids[0], 30) is None  # posted: never again

    lapsing = await add_flags(first, 21)
    assert await first.claim_post(lapsing[-1], 0.2) is not None  # a process that dies holding a claim ...
    assert await second.claim_post(lapsing[-1], 30) is None
    await asyncio.sleep(0.3)
    assert await second.claim_post(lapsing[-1], 30) is not None  # ... lets it lapse, and another takes over


async def test_two_moderators_clicking_at_once_record_one_review(two_stores) -> None:
    first, second = two_stores
    for flag_id in await add_flags(first, 10):
        outcomes = await asyncio.gather(
            first.review_flag(flag_id, 1, ReviewAction.CONFIRM),
            second.review_flag(flag_id, 2, ReviewAction.DISMISS),
            return_exceptions=True,
        )
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], AlreadyReviewedError), outcomes
        [review] = await second.reviews(flag_id)
        assert lost[0].review == review and lost[0].flag.status is won[0].status is review.new_status
    vectors, labels = await first.feedback_examples(NAMESPACE)
    assert len(labels) == 10  # one label per flag, the winner's


async def test_an_opt_out_or_a_setting_changed_by_one_process_holds_in_the_other_within_a_second(two_stores) -> None:
    """Each process keeps settings and opt-outs for under a second: the other sees a change within 1 s, the one that
    made it at once."""
    first, second = two_stores
    assert not await second.is_opted_out(5) and (await second.guild_config(1)).modlog_channel_id is None  # cached
    await first.set_opt_out(5, True)
    await first.update_guild(1, modlog_channel_id=99, flag_threshold=0.7)
    await first.set_channel(1, 10, "disabled", True)
    changed = time.monotonic()
    assert await first.is_opted_out(5) and (await first.guild_config(1)).disabled_channels == {10}
    while not await second.is_opted_out(5) or (await second.guild_config(1)).disabled_channels != {10}:
        assert time.monotonic() - changed < 1.0, "the other process still reads the old opt-out or settings"
        await asyncio.sleep(0.02)
    config = await second.guild_config(1)
    assert (config.modlog_channel_id, config.flag_threshold) == (99, 0.7)
    await second.set_opt_out(5, False)
    changed = time.monotonic()
    assert not await second.is_opted_out(5)
    while await first.is_opted_out(5):
        assert time.monotonic() - changed < 1.0, "the opt-in did not reach the other process within 1 s"
        await asyncio.sleep(0.02)


async def test_a_burst_of_lookups_costs_one_query_per_batch(url: str) -> None:
    """10,000 messages' checks at once on a one-connection pool: one opt-out query and one per guild, no timeout."""
    store = await AsyncStore.open(url, pool_size=1)
    try:
        await store.set_opt_out(3, True)
        await store.set_channel(2, 20, "live", True)
        statements: list[str] = []
        event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        opted_out, configs = await asyncio.gather(
            asyncio.gather(*(store.is_opted_out(index % 500) for index in range(10_000))),
            asyncio.gather(*(store.guild_config(index % 3) for index in range(10_000))),
        )
        assert opted_out == [index % 500 == 3 for index in range(10_000)]
        assert [config.live_channels for config in configs[:3]] == [frozenset(), frozenset(), {20}]
        assert len(statements) == 1 + 3, statements
    finally:
        await store.close()


async def test_a_write_that_finds_the_database_locked_is_retried(tmp_path: Path) -> None:
    """SQLite busy past its timeout (another process holds the write lock) is a passing failure: the write waits and
    goes through once the lock is free, instead of failing."""
    path = tmp_path / "moodbot.sqlite3"
    store = await AsyncStore.open(path)
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock longer than the store's busy timeout
        writing = asyncio.create_task(store.set_opt_out(8, True))
        await asyncio.sleep(BUSY_TIMEOUT_MS / 1000 + 1.0)
        assert not writing.done()
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(writing, 10)
        assert await store.is_opted_out(8)
    finally:
        await store.close()


async def test_two_processes_changing_the_same_state_at_once_act_once(two_stores) -> None:
    first, second = two_stores
    results = await asyncio.gather(*(store.change_state("k", "v1") for store in (first, second) for _ in range(3)))
    assert sorted(results) == [False] * 5 + [True]
    assert await first.change_state("k", "v1") is False
    assert await second.change_state("k", "v2") is True
    await first.forget_state("k", "v1")  # not the value it holds: nothing happens
    assert await first.change_state("k", "v2") is False
    await first.forget_state("k", "v2")
    assert await second.change_state("k", "v2") is True


async def test_a_write_finishes_even_when_its_caller_is_cancelled(url: str) -> None:
    store = await AsyncStore.open(url)
    [flag_id] = await add_flags(store, 1)
    caller = asyncio.create_task(store.mark_posted(flag_id, 99, 1234))  # e.g. the re-poster, cancelled at shutdown
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await store.close()  # waits for the write
    with Store.open_sync(url) as reopened:
        assert reopened.flag(flag_id).modlog_message_id == 1234


# moodbot db upgrade / copy


def moodbot_db(*args: str, data_dir: Path, **env: str) -> tuple[int, str, str]:
    """``moodbot db ...`` as a user runs it (the console script), on the install in ``data_dir``."""
    environ = clean_environ() | {"MOODBOT_DATA_DIR": str(data_dir), "MOODBOT_LOG_LEVEL": "warning"} | env
    done = run_moodbot(["db", *args], environ, timeout=60)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def printed_counts(out: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.endswith(" rows")}


def test_db_copy_moves_an_install_to_postgres_and_verifies_it(tmp_path: Path, postgres: PostgresServer) -> None:
    install = legacy_file(tmp_path / "var" / "moodbot.sqlite3")
    target = postgres.create_database()
    code, out, err = moodbot_db("copy", "--to", target, data_dir=install.parent)
    assert code == 0, err
    assert printed_counts(out) == {table: LEGACY_ROWS.get(table, 0) for table in metadata.tables}
    assert f"verified: all {sum(LEGACY_ROWS.values())} rows arrived unchanged" in out

    with Store.open_sync(target) as moved, Store.open_sync(install) as source:
        assert moved.guild_config(111) == source.guild_config(111)
        assert moved.flags(111) == source.flags(111) and moved.reviews(1) == source.reviews(1)
        np.testing.assert_array_equal(moved.feedback_examples("enc:fp32")[0], source.feedback_examples("enc:fp32")[0])
        assert add_flag(moved, 9999)[0].id == 4  # ids continue after the copied ones: posted cards keep their flag

    code, out, err = moodbot_db("copy", "--to", target, data_dir=install.parent)
    assert code == 2 and "not empty (" in err and "flags 4" in err and "--replace" in err and not out
    code, out, err = moodbot_db("copy", "--to", target, "--replace", data_dir=install.parent)
    assert code == 0 and printed_counts(out)["flags"] == 3, err  # the target's extra flag is gone


async def test_db_copy_postgres_to_sqlite_round_trips(tmp_path: Path, postgres: PostgresServer) -> None:
    source = postgres.create_database()
    store = await AsyncStore.open(source)
    try:
        flag_id = (await add_flags(store, 3))[1]
        await store.review_flag(flag_id, 42, ReviewAction.DISMISS)
        await store.set_opt_out(2**62, True)
        await store.update_guild(1, auto_flag=False)
    finally:
        await store.close()
    target = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    counts = await admin.copy(source, target)
    assert {table: rows for table, rows in counts.items() if rows} == {
        "flags": 3,
        "guild_settings": 1,
        "optouts": 1,
        "feedback": 1,
        "flag_reviews": 1,
    }
    with pytest.raises(StoreError, match="same database"):
        await admin.copy(target, target)
    assert await admin.upgrade(target) == head_revision()


def test_moodbot_db_upgrade_adopts_the_configured_file(tmp_path: Path) -> None:
    install = legacy_file(tmp_path / "var" / "moodbot.sqlite3")
    code, out, err = moodbot_db("upgrade", data_dir=install.parent)
    assert code == 0 and f"schema revision {head_revision()}" in out, err
    with sqlite3.connect(install) as raw:
        assert raw.execute("SELECT COUNT(*) FROM flags").fetchone()[0] == 3
    raw.close()


# bad URLs


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("mysql://moodbot:hunter2@db/moodbot", "SQLite or PostgreSQL"),
        ("postgresql://moodbot:hunter2@db:port/moodbot", "not a database URL"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ],
)
def test_a_bad_url_is_a_clear_error_without_the_password(raw: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as error:
        resolve_url(raw)
    assert "hunter2" not in str(error.value)
    with pytest.raises(SettingsError, match="MOODBOT_DATABASE_URL") as invalid:
        load_settings({"MOODBOT_DATABASE_URL": raw}, None)
    assert "hunter2" not in str(invalid.value) and "\n" not in str(invalid.value)


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    unreachable = "postgresql://moodbot:hunter2@127.0.0.1:1/moodbot"
    code, out, err = moodbot_db("upgrade", data_dir=tmp_path, MOODBOT_DATABASE_URL=unreachable)
    assert code == 2 and "cannot open the database" in err and "Connect call failed" in err
    assert "hunter2" not in err and err.count("\n") == 1 and not out


def test_database_settings(tmp_path: Path) -> None:
    default = load_settings({"MOODBOT_DATA_DIR": str(tmp_path)}, None)
    assert default.database == f"sqlite:///{tmp_path / 'moodbot.sqlite3'}" and default.database_pool_size is None
    shared = load_settings(
        {"MOODBOT_DATABASE_URL": "postgresql://moodbot:hunter2@db/moodbot", "MOODBOT_DATABASE_POOL_SIZE": "4"}, None
    )
    assert shared.database == "postgresql://moodbot:hunter2@db/moodbot" and shared.database_pool_size == 4
    assert "hunter2" not in repr(shared)
    with pytest.raises(SettingsError, match="MOODBOT_DATABASE_POOL_SIZE"):
        load_settings({"MOODBOT_DATABASE_POOL_SIZE": "0"}, None)


def test_urls_resolve_to_the_async_drivers(tmp_path: Path) -> None:
    assert resolve_url(tmp_path / "a.sqlite3").drivername == "sqlite+aiosqlite"
    assert (
        resolve_url("postgres://h/db").drivername == resolve_url("postgresql://h/db").drivername == "postgresql+asyncpg"
    )


def test_a_flag_keeps_its_reasons_and_teaches_the_head_that_raised_it(tmp_path: Path) -> None:
    reasons = [Reason("offensive", "offensive", 0.97), Reason("sentiment", "negative", 0.93)]
    with Store.open_sync(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        insult = store.add_flag(guild_id=1, channel_id=10, message_id=1, author_id=100, p_negative=0.93,
                                text="you absolute clown", vector=np.ones(8, np.float32), namespace=NAMESPACE,
                                reasons=reasons)
        complaint, _ = add_flag(store, 2)
        assert insult.reasons == tuple(reasons) and insult.head == "offensive" and complaint.head == "sentiment"
        assert [f.id for f in store.flags(1, head="offensive")[0]] == [insult.id]
        assert store.flags(1, head="sentiment")[1] == 1 and store.flags(1, head="threat")[1] == 0
        store.review_flag(insult.id, 42, ReviewAction.DISMISS)  # a false offensive flag: 0 (other) for that head
        store.review_flag(complaint.id, 42, ReviewAction.CONFIRM)  # a true negative: 0 (negative) for sentiment
        assert store.feedback_examples(NAMESPACE, head="offensive")[1].tolist() == [0]
        assert store.feedback_examples(NAMESPACE)[1].tolist() == [0]
        assert store.flag(insult.id).reasons == tuple(reasons)  # the review keeps them


def test_guild_flag_signals_and_language_pin(tmp_path: Path) -> None:
    with Store.open_sync(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        assert store.guild_config(1).flag_on == {"harmful", "negative"} and store.guild_config(1).language is None
        config = store.update_guild(1, flag_on="harmful", language="DE")
        assert config.flag_on == {"harmful"} and config.language == "de"
        assert store.update_guild(1, language="auto").language is None
        with pytest.raises(ValueError, match="comma-separated choice"):
            store.update_guild(1, flag_on="spam")
        with pytest.raises(ValueError):
            store.update_guild(1, language="klingon")
        assert store.guild_config(1).flag_on == {"harmful"}  # a refused change leaves the settings as they were
