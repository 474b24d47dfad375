"""Settings: defaults, .env values, the environment winning over .env, and one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import DEFAULT_MODEL, Settings, SettingsError, load_settings
from tests.support.helpers import REPO_ROOT, TOKEN, clean_environ, run_moodbot


def test_defaults_without_env_or_dotenv() -> None:
    settings = load_settings({}, dotenv_path=None)
    assert settings == Settings()
    assert settings.classifier.model == DEFAULT_MODEL
    assert settings.discord_token is None and settings.classifier.head is None
    classifier, worker = settings.classifier, settings.worker
    assert (classifier.device, classifier.cache_size_mb) == ("auto", 512)
    assert (worker.max_batch, worker.max_wait_ms) == (512, 5.0)
    assert settings.classifier.cache_dir == Path("var/cache") and settings.database_path == Path("var/moodbot.sqlite3")


def test_dotenv_values_are_read(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nMOODBOT_MAX_BATCH=16\nMOODBOT_MAX_WAIT_MS=2.5\nMOODBOT_DEVICE=CPU\n"
        f"MOODBOT_DATA_DIR={tmp_path / 'data'}\nMOODBOT_CACHE_SIZE_MB=64\nDISCORD_TOKEN={TOKEN}\n"
    )
    settings = load_settings({}, dotenv_path=dotenv)
    classifier, worker = settings.classifier, settings.worker
    assert (worker.max_batch, worker.max_wait_ms, classifier.device, classifier.cache_size_mb) == (16, 2.5, "cpu", 64)
    assert settings.discord_token == TOKEN
    assert settings.classifier.cache_dir == tmp_path / "data" / "cache"  # follows MOODBOT_DATA_DIR unless set


def test_environment_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("MOODBOT_MAX_BATCH=16\nMOODBOT_MAX_WAIT_MS=2\nMOODBOT_MODEL=from-dotenv\n")
    settings = load_settings({"MOODBOT_MAX_BATCH": "32", "MOODBOT_MODEL": "from-env"}, dotenv_path=dotenv)
    assert settings.worker.max_batch == 32 and settings.classifier.model == "from-env"
    assert settings.worker.max_wait_ms == 2.0  # untouched by the environment: .env value stays


def test_env_example_is_a_valid_configuration() -> None:
    """The documented example (empty token and head) loads, and documents every setting the code reads."""
    example = REPO_ROOT / ".env.example"
    settings = load_settings({}, dotenv_path=example)
    assert settings.discord_token is None and settings.classifier.head is None
    text = example.read_text()
    for name in ("DISCORD_TOKEN", "MOODBOT_MODEL", "MOODBOT_HEAD", "MOODBOT_DEVICE", "MOODBOT_CACHE_DIR",
                 "MOODBOT_CACHE_SIZE_MB", "MOODBOT_MAX_BATCH", "MOODBOT_MAX_WAIT_MS", "MOODBOT_QUEUE_SIZE"):
        assert f"\n{name}=" in text, name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MOODBOT_MAX_BATCH", "abc"),
        ("MOODBOT_MAX_BATCH", "0"),
        ("MOODBOT_MAX_BATCH", "1.5"),
        ("MOODBOT_DEVICE", "gpu"),
        ("MOODBOT_MAX_WAIT_MS", "-1"),
        ("MOODBOT_MAX_WAIT_MS", "soon"),
        ("MOODBOT_CACHE_SIZE_MB", "0"),
        ("MOODBOT_QUEUE_SIZE", "-5"),
        ("MOODBOT_MESSAGE_CONCURRENCY", "0"),
        ("MOODBOT_MESSAGE_BACKLOG", "many"),
        ("MOODBOT_FLAG_THRESHOLD", "2"),
        ("MOODBOT_QUANTIZE", "int4"),
        ("MOODBOT_LOG_LEVEL", "loud"),
        ("DISCORD_API_BASE", "ftp://example.com"),
        ("MOODBOT_HEAD", "/nonexistent/head.json"),
        ("MOODBOT_HISTORY_DAYS", "0"),
        ("MOODBOT_DASHBOARD_PORT", "70000"),
        ("MOODBOT_DASHBOARD_URL", "dashboard.example.com"),
        ("MOODBOT_DASHBOARD_SESSION_KEY", "not-a-fernet-key"),
        ("DISCORD_CLIENT_ID", "me"),
        ("MOODBOT_FLAG_ON", "toxic"),
    ],
)
def test_invalid_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value}, dotenv_path=None)
    message = str(caught.value)
    assert message.startswith(f"{name}=") and value in message and "\n" not in message


def test_int8_and_bf16_do_not_combine() -> None:
    with pytest.raises(SettingsError, match="MOODBOT_PRECISION='bf16' with MOODBOT_QUANTIZE='int8': int8 quant"):
        load_settings({"MOODBOT_QUANTIZE": "int8", "MOODBOT_PRECISION": "bf16"}, dotenv_path=None)


def test_flag_signals_default_to_both_and_may_be_narrowed() -> None:
    assert load_settings({}, dotenv_path=None).flag_on == {"harmful", "negative"}
    assert load_settings({"MOODBOT_FLAG_ON": "harmful"}, dotenv_path=None).flag_on == {"harmful"}


def test_invalid_value_in_dotenv_is_reported_too(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("MOODBOT_MAX_BATCH=lots\n")
    with pytest.raises(SettingsError, match="MOODBOT_MAX_BATCH='lots'"):
        load_settings({}, dotenv_path=dotenv)


def test_repr_never_shows_the_token() -> None:
    settings = load_settings({"DISCORD_TOKEN": TOKEN}, dotenv_path=None)
    assert settings.discord_token == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert "max_batch=512" in repr(settings)


def test_repr_never_shows_url_passwords() -> None:
    settings = load_settings(
        {"MOODBOT_CACHE_URL": "redis://:hunter2@127.0.0.1:6379/0", "MOODBOT_DATABASE_URL": "postgresql://u:pw9@h/db"},
        dotenv_path=None,
    )
    assert settings.worker.cache_url == "redis://:hunter2@127.0.0.1:6379/0"
    assert "hunter2" not in repr(settings) and "pw9" not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [("MOODBOT_MAX_BATCH", "abc"), ("MOODBOT_DEVICE", "gpu")])
def test_cli_stops_with_one_line_error(name: str, value: str, tmp_path: Path) -> None:
    env = clean_environ() | {name: value, "DISCORD_TOKEN": TOKEN, "MOODBOT_DATA_DIR": str(tmp_path)}
    result = run_moodbot(["classify", "hello"], env)
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"moodbot: error: {name}='{value}' is invalid")
    assert TOKEN not in result.stderr.decode()


def test_shard_settings() -> None:
    assert load_settings({}, dotenv_path=None).shards is None  # one process on every shard, as before
    auto = load_settings({"MOODBOT_SHARD_COUNT": "auto"}, dotenv_path=None).shards
    assert auto is not None and (auto.count, auto.ids) == (None, None)
    some = load_settings({"MOODBOT_SHARD_COUNT": "8", "MOODBOT_SHARD_IDS": "0-2, 5,7"}, dotenv_path=None).shards
    assert some is not None and (some.count, some.ids) == (8, (0, 1, 2, 5, 7))
    assert some.owns(5 << 22) and not some.owns(4 << 22) and some.owns((8 + 7) << 22)


@pytest.mark.parametrize(
    ("env", "name", "reason"),
    [
        ({"MOODBOT_SHARD_COUNT": "0"}, "MOODBOT_SHARD_COUNT", "or auto"),
        ({"MOODBOT_SHARD_COUNT": "many"}, "MOODBOT_SHARD_COUNT", "or auto"),
        ({"MOODBOT_SHARD_COUNT": "4", "MOODBOT_SHARD_IDS": "2-1"}, "MOODBOT_SHARD_IDS", "e.g. 0-3 or 0,2,5"),
        ({"MOODBOT_SHARD_COUNT": "4", "MOODBOT_SHARD_IDS": "1,1"}, "MOODBOT_SHARD_IDS", "e.g. 0-3 or 0,2,5"),
        ({"MOODBOT_SHARD_COUNT": "4", "MOODBOT_SHARD_IDS": "x"}, "MOODBOT_SHARD_IDS", "e.g. 0-3 or 0,2,5"),
        ({"MOODBOT_SHARD_COUNT": "2", "MOODBOT_SHARD_IDS": "0-3"}, "MOODBOT_SHARD_IDS", "shard 3 is not below"),
        ({"MOODBOT_SHARD_IDS": "0"}, "MOODBOT_SHARD_IDS", "needs MOODBOT_SHARD_COUNT"),
        ({"MOODBOT_SHARD_COUNT": "auto", "MOODBOT_SHARD_IDS": "0"}, "MOODBOT_SHARD_IDS", "needs MOODBOT_SHARD_COUNT"),
    ],
)
def test_invalid_shard_settings_name_the_variable(env: dict[str, str], name: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env, dotenv_path=None)
    message = str(caught.value)
    assert message.startswith(f"{name}={env[name]!r} is invalid") and reason in message and "\n" not in message


def test_dashboard_settings() -> None:
    key = "A" * 43 + "="
    settings = load_settings({
        "MOODBOT_DASHBOARD_PORT": "8080", "MOODBOT_DASHBOARD_URL": "https://mood.example.com/",
        "DISCORD_CLIENT_SECRET": "s3cret-value", "MOODBOT_DASHBOARD_SESSION_KEY": key, "MOODBOT_HISTORY_DAYS": "30",
    }, dotenv_path=None)
    dashboard = settings.dashboard
    assert (dashboard.port, dashboard.host, dashboard.base_url) == (8080, "127.0.0.1", "https://mood.example.com")
    assert (dashboard.session_key, settings.history_days) == (key, 30)
    assert "s3cret-value" not in repr(settings) and key not in repr(settings)
    assert load_settings({"MOODBOT_DASHBOARD_PORT": "9000"}, dotenv_path=None).dashboard.base_url == (
        "http://127.0.0.1:9000"
    )
