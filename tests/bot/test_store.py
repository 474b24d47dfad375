"""The SQLite store: schema, settings, opt-outs, flags, reviews and feedback (real files, no mocks)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.store import SCHEMA_VERSION, AsyncStore, FlagStatus, ReviewAction, Store, StoreError, excerpt

NAMESPACE = "encoder-a:fp32"


def add_flag(store: Store, message_id: int, *, guild_id: int = 1, namespace: str = NAMESPACE, seed: int = 0, text: str = "awful"):
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return store.add_flag(guild_id=guild_id, channel_id=10, message_id=message_id, author_id=100, p_negative=0.95, text=text,
                          vector=vector, namespace=namespace), vector


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "moodbot.sqlite3"


def test_schema_and_pragmas(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with Store.open_sync(db_path):  # re-opening an up-to-date database migrates nothing
        pass


def test_newer_schema_is_refused(db_path: Path) -> None:
    Store.open_sync(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store.open_sync(db_path)


def test_guild_settings_default_and_persist(db_path: Path) -> None:
    with Store.open_sync(db_path, default_threshold=0.8) as store:
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
    with Store.open_sync(db_path, default_threshold=0.8) as store:
        config = store.guild_config(7)
        assert (config.modlog_channel_id, config.flag_threshold, config.auto_flag) == (70, 0.95, False)
        assert config.live_channels == {71} and config.disabled_channels == {72} and config.exempt_roles == {700}
        assert store.guild_config(8).flag_threshold == 0.8


def test_invalid_settings_write_nothing(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        store.update_guild(7, flag_threshold=0.9)
        with pytest.raises(sqlite3.IntegrityError):
            store.update_guild(7, flag_threshold=0.2)
        with pytest.raises(ValueError, match="unknown"):
            store.update_guild(7, token="x")
        with pytest.raises(sqlite3.IntegrityError):
            store.set_channel(7, 1, "bogus", True)
        assert store.guild_config(7).flag_threshold == 0.9


def test_opt_outs(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        store.set_opt_out(5, True)
        store.set_opt_out(5, True)
        store.set_opt_out(6, True)
        store.set_opt_out(6, False)
        assert store.opted_out() == {5}


def test_a_message_is_flagged_once_per_guild(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        flag, _ = add_flag(store, 555)
        assert flag is not None and flag.status is FlagStatus.OPEN and flag.modlog_message_id is None
        assert add_flag(store, 555)[0] is None  # a replayed MESSAGE_CREATE
        assert add_flag(store, 555, guild_id=2)[0] is not None
        flags, total = store.flags(1)
        assert total == 1 and flags[0].jump_url == "https://discord.com/channels/1/10/555"


def test_excerpt_is_short_and_one_line() -> None:
    assert excerpt("a\nb   c") == "a b c"
    cut = excerpt("x" * 1000)
    assert len(cut) == 300 and cut.endswith("…")


def test_unposted_flags_until_posted(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        first, _ = add_flag(store, 1)
        second, _ = add_flag(store, 2)
        assert store.last_flag_id() == second.id
        store.mark_posted(first.id, 99, 1234)
        assert [f.id for f in store.unposted_flags(second.id)] == [second.id]
        assert store.unposted_flags(first.id) == []  # flags raised after start-up are posted by their own handler
        assert store.flag(first.id).modlog_message_id == 1234


@pytest.mark.parametrize(("action", "status", "label"), [
    (ReviewAction.CONFIRM, FlagStatus.CONFIRMED, 0), (ReviewAction.DISMISS, FlagStatus.DISMISSED, 1), (ReviewAction.DELETE, FlagStatus.DELETED, 0),
])
def test_review_records_history_and_feedback(db_path: Path, action: ReviewAction, status: FlagStatus, label: int) -> None:
    with Store.open_sync(db_path) as store:
        flag, vector = add_flag(store, 1, text="this update is awful")
        reviewed = store.review_flag(flag.id, 42, action)
        assert reviewed.status is status
        [review] = store.reviews(flag.id)
        assert (review.moderator_id, review.action, review.old_status, review.new_status) == (42, action, FlagStatus.OPEN, status)
        vectors, labels = store.feedback_examples(NAMESPACE)
        assert vectors.dtype == np.float32 and labels.dtype == np.int64
        np.testing.assert_array_equal(vectors, vector[None, :])
        assert labels.tolist() == [label]
        columns = [row[1] for row in store._db.execute("PRAGMA table_info(feedback)")]
        assert "text" not in columns and "excerpt" not in columns
        raw = store._db.execute("SELECT * FROM feedback").fetchone()
        assert not any(isinstance(v, str) and "awful" in v for v in tuple(raw))


def test_relabelling_keeps_one_feedback_row(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        flag, _ = add_flag(store, 1)
        store.review_flag(flag.id, 42, ReviewAction.DISMISS)
        store.review_flag(flag.id, 43, ReviewAction.CONFIRM)
        assert [r.new_status for r in store.reviews(flag.id)] == [FlagStatus.DISMISSED, FlagStatus.CONFIRMED]
        assert store.feedback_examples(NAMESPACE)[1].tolist() == [0]
        with pytest.raises(KeyError):
            store.review_flag(999, 42, ReviewAction.CONFIRM)


def test_feedback_examples_by_namespace_and_guild(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        for message_id, guild_id, namespace in [(1, 1, NAMESPACE), (2, 2, NAMESPACE), (3, 1, "other:fp32")]:
            flag, _ = add_flag(store, message_id, guild_id=guild_id, namespace=namespace, seed=message_id)
            store.review_flag(flag.id, 42, ReviewAction.DISMISS)
    with Store.open_sync(db_path) as store:  # exactly how `moodbot train --feedback` reads it
        vectors, labels = store.feedback_examples(NAMESPACE, None)
        assert vectors.shape == (2, 8) and labels.tolist() == [1, 1]
        assert store.feedback_examples(NAMESPACE, 2)[0].shape == (1, 8)
        empty_vectors, empty_labels = store.feedback_examples("unknown")
        assert len(empty_labels) == 0 and len(empty_vectors) == 0


def test_flags_paging_and_status_filter(db_path: Path) -> None:
    with Store.open_sync(db_path) as store:
        ids = [add_flag(store, m)[0].id for m in range(12)]
        store.review_flag(ids[0], 42, ReviewAction.CONFIRM)
        page, total = store.flags(1, FlagStatus.OPEN, limit=5, offset=0)
        assert total == 11 and [f.id for f in page] == ids[:0:-1][:5]
        assert store.flags(1, FlagStatus.OPEN, limit=5, offset=10)[0][0].id == ids[1]
        assert [f.id for f in store.flags(1, FlagStatus.CONFIRMED)[0]] == [ids[0]]


async def test_async_store_runs_in_its_own_thread(db_path: Path) -> None:
    store = await AsyncStore.open(db_path, default_threshold=0.7)
    try:
        assert (await store._call(lambda: threading.current_thread().name)).startswith("moodbot-store")
        assert (await store.guild_config(3)).flag_threshold == 0.7
        assert (await store.update_guild(3, flag_threshold=0.6)).flag_threshold == 0.6
        assert (await store.guild_config(3)).flag_threshold == 0.6  # the cache follows writes
        assert not await store.is_opted_out(9)
        await store.set_opt_out(9, True)
        assert await store.is_opted_out(9)
        flag = await store.add_flag(guild_id=3, channel_id=4, message_id=5, author_id=9, p_negative=0.99, text="bad",
                                    vector=np.ones(4, np.float32), namespace=NAMESPACE)
        assert (await store.review_flag(flag.id, 1, ReviewAction.CONFIRM)).status is FlagStatus.CONFIRMED
    finally:
        await store.close()
