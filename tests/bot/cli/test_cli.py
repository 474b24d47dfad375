"""The ``moodbot`` command line, end to end: real processes where the process matters, ``main()`` elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.cli.console import classify_lines
from bot.settings import Settings
from classifier.heads.logistic import LogisticHead
from classifier.heads.sentiment import CLASSES
from classifier.inference.router import Paths, Router
from tests.support.classifier import alone, assert_as_alone
from tests.support.helpers import CHAT_SETS, SST2_DEV, clean_environ, run_moodbot, write_tsv

#: The keys of one `classify --json` object for a head without moderation signals.
JSON_KEYS = {"text", "label", "p_negative", "p_neutral", "p_positive", "encoder", "language", "cached", "flag",
             "flag_reasons"}

COMMANDS = ("run", "console", "classify", "evaluate", "train", "bench", "cache")
EMPTY = {"text": "", "label": None, "error": "empty text"}
ZALGO = "Z\u0351\u0307\u0313\u0308a\u0364\u0306\u0352l\u035b\u0315g\u0310\u0343o\u0363 c\u0489o\u0337m\u0336e\u0338s"


def json_lines(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode("utf-8").split("\n")[:-1]]


def test_help_lists_every_command(cli_env: dict[str, str]) -> None:
    result = run_moodbot(["--help"], cli_env)
    assert result.returncode == 0
    text = result.stdout.decode()
    for command in COMMANDS:
        assert f"    {command} " in text, command
    assert "--env-file" in text and ".env.example" in text


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("classify", ["TEXT", "--json"]),
        ("console", ["--json"]),
        ("evaluate", ["--data", "--json", "--plot", ":three-way", "p_negative >= 0.9"]),
        ("train", ["--recipe", "--task", "--data", "--dev", "--model", "--out", "--extra", "--pooling", ":three-way",
                   "dismiss neutral"]),
        ("cache", ["stats", "clear"]),
        ("bench", ["--json", "--model", "--messages", "--data", "--compare", ":three-way"]),
    ],
)
def test_each_command_documents_its_options(
    command: str, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(option in " ".join(text.split()) for option in options)  # argparse wraps lines anywhere


def test_bench_data_takes_train_specs_and_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "--data", "a.tsv", "--data", "b.tsv:2:three-way", "--compare", "c.tsv"])
    assert [(d.path.name, d.weight, d.three_way) for d in args.data] == [("a.tsv", 1.0, False), ("b.tsv", 2.0, True)]
    assert [d.path.name for d in args.compare] == ["c.tsv"]
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["bench", "--data", "a.tsv:three_way"])
    assert exited.value.code == 2 and "unknown suffix 'three_way'" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["frobnicate"])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


HOSTILE_LINES: list[bytes] = [
    b"",
    b"   \t   ",
    b"\x00\x00\x00",
    ("word " * 800).strip().encode(),  # 4,000 characters
    b"lorem ipsum " * 8_333 + b"end!",  # 100,000 characters
    b"nul\x00inside\x00the line",
    b"invalid utf-8 \xff\xfe here \xc3\x28 and \xed\xa0\x80 there",
    "zero\u200bwidth\u200c joiners\u200d\ufeff".encode(),
    "\u202eright-to-left override\u202c text".encode(),
    ZALGO.encode(),
    "😀🔥💯🎉".encode(),
    b"```python print('hello') ```",
    b"see https://example.com/a?b=c&d=<e> and http://localhost:8080/",
    b"@everyone @here <@123456789012345678> <@&987654321098765432> free nitro",
    b"windows line ending\r",
    b"carriage\rreturn in the middle",
    "line\u2028separator and \x0bvertical\x0c feed".encode(),
    b"I love this server",
]


def test_classify_json_survives_hostile_stdin(cli_env: dict[str, str], tiny_encoder, tiny_head) -> None:
    stdin = b"\n".join(HOSTILE_LINES) + b"\n" + b"last line without newline"
    result = run_moodbot(["classify", "--json"], cli_env, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in result.stderr
    records = json_lines(result.stdout)
    assert len(records) == len(HOSTILE_LINES) + 1  # exactly one object per input line
    classified = []
    for raw, record in zip([*HOSTILE_LINES, b"last line without newline"], records, strict=True):
        if not raw.replace(b"\x00", b"").strip():
            assert record == EMPTY, raw
            continue
        assert set(record) == JSON_KEYS, raw
        assert 0.0 < record["p_positive"] < 1.0 and record["cached"] is False
        assert record["text"] == raw.decode("utf-8", "replace").rstrip("\r")
        classified.append(record)
    # Each line's scores and label are what the model gives the line's cleaned text read on its own.
    assert_as_alone(classified, [record["text"] for record in classified], tiny_encoder, tiny_head)
    assert len(records[4]["text"]) == 100_000  # echoed in full, classified on its first tokens
    assert "\ufffd" in records[6]["text"]


def test_classify_arguments_with_lone_surrogates_and_plain_output(moodbot_main, tiny_encoder, tiny_head) -> None:
    result = moodbot_main(["classify", "--json", "bad \udcff bytes", "  ", "fine"])
    assert result.code == 0
    records = [json.loads(line) for line in result.out.splitlines()]
    assert records[0]["text"] == "bad \ufffd bytes" and records[1] == EMPTY
    assert_as_alone([records[0], records[2]], ["bad \ufffd bytes", "fine"], tiny_encoder, tiny_head)

    plain = moodbot_main(["classify", "fine", ""])
    lines = plain.out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == alone(tiny_encoder, tiny_head, "fine").label
    assert all(f"{name}=" in lines[0] for name in ("p_negative", "p_neutral", "p_positive"))
    assert lines[0].endswith(" cached  fine")  # classified by the first call: now from the cache
    assert lines[1] == "(skipped: empty text)"


def test_console_reads_piped_lines(moodbot_main, tiny_encoder, tiny_head) -> None:
    result = moodbot_main(["console", "--json"], stdin=b"first\r\n\n\xff second\nstray\rreturn\n")
    records = [json.loads(line) for line in result.out.splitlines()]
    assert result.code == 0 and len(records) == 4
    assert records[0]["text"] == "first" and records[1] == EMPTY and records[2]["text"] == "\ufffd second"
    assert records[3]["text"] == "stray\rreturn"  # one line, one result, of the whole line
    assert_as_alone([records[0], records[2], records[3]], ["first", "\ufffd second", "stray\rreturn"], tiny_encoder,
                    tiny_head)


def test_classify_lines_keeps_order_across_chunks(make_classifier) -> None:
    lines = ["a", "", "b", "  ", "c", "a", "d", ""]
    results = list(classify_lines(Router(Paths.single(make_classifier())), lines, Settings(), chunk=3))
    assert [r["text"] if r["label"] else None for r in results] == ["a", None, "b", None, "c", "a", "d", None]
    assert [r.get("cached") for r in results] == [False, None, False, None, False, True, False, None]


def test_run_without_token_starts_the_console_with_the_bundled_model(tmp_path: Path) -> None:
    """What `printf 'I love this server\\nthis update is awful\\n' | make run` does: bundled encoder, shipped head."""
    env = clean_environ() | {"MOODBOT_DATA_DIR": str(tmp_path / "var"), "MOODBOT_DEVICE": "cpu"}
    result = run_moodbot(["run"], env, stdin=b"I love this server\nthis update is awful\n")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("positive") and lines[0].endswith("I love this server")
    assert lines[1].startswith("negative") and lines[1].endswith("this update is awful")
    assert "DISCORD_TOKEN is not set" in result.stderr.decode()


def test_classify_with_the_shipped_head(moodbot_main, tmp_path: Path) -> None:
    result = moodbot_main(
        ["classify", "--json", "I love this server", "this update is awful"], MOODBOT_MODEL="", MOODBOT_HEAD=""
    )
    assert result.code == 0, result.err
    first, second = (json.loads(line) for line in result.out.splitlines())
    assert (first["label"], second["label"]) == ("positive", "negative")
    assert first["p_positive"] > 0.5 > second["p_positive"]


def test_evaluate_dev_set_twice_second_run_from_cache(tmp_path: Path) -> None:
    """`moodbot evaluate --data ../shared/data/sst2/dev.tsv --json` with the shipped head, then again from the cache."""
    env = clean_environ() | {"MOODBOT_DATA_DIR": str(tmp_path / "var"), "MOODBOT_CACHE_DIR": str(tmp_path / "cache"),
                             "MOODBOT_DEVICE": "cpu", "MOODBOT_LOG_LEVEL": "warning"}
    data = "../shared/data/sst2/dev.tsv"
    assert (Path.cwd() / data).exists() or SST2_DEV.exists()
    first = run_moodbot(["evaluate", "--data", data, "--json"], env, timeout=400)
    assert first.returncode == 0, first.stderr.decode(errors="replace")[-2000:]
    report = json.loads(first.stdout)
    assert report["n"] == len([line for line in SST2_DEV.read_text().splitlines() if line.strip()])
    assert report["accuracy"] >= 0.80, report["accuracy"]
    assert report["cache_hits"] < report["n"] / 10
    assert set(report["per_class"]) == {"negative", "positive"} and sum(map(sum, report["confusion"])) == report["n"]
    assert report["three_way"] is False and report["classes"] == ["negative", "positive"]  # binary data
    assert "evaluating dev.tsv" in first.stderr.decode()  # the progress bar goes to stderr

    plot = tmp_path / "plots" / "dev.png"
    second = run_moodbot(["evaluate", "--data", data, "--json", "--plot", str(plot)], env)
    assert second.returncode == 0, second.stderr.decode(errors="replace")[-2000:]
    again = json.loads(second.stdout)
    assert again["cache_hits"] == again["n"] == report["n"]
    assert again["accuracy"] == report["accuracy"]
    assert again["seconds"] * 5 < report["seconds"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000 and again["plot"] == str(plot)


def test_evaluate_plain_table_and_plot(moodbot_main, tiny_data_dir: Path, tmp_path: Path) -> None:
    result = moodbot_main(["evaluate", "--data", str(tiny_data_dir / "dev.tsv"), "--plot", str(tmp_path / "x.png")])
    assert result.code == 0
    for heading in ("accuracy", "ECE", "noise floor", "precision", "confusion", "cache hits 0/11", "plot"):
        assert heading in result.out
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_data_file_is_one_line_error_naming_the_line(moodbot_main, tmp_path: Path) -> None:
    bad = write_tsv(tmp_path / "bad.tsv", [("fine", 1), ("also fine", 0)])
    bad.write_text(bad.read_text() + "no label here\n")
    result = moodbot_main(["evaluate", "--data", str(bad)])
    assert result.code == 2 and result.out == ""
    assert (
        result.err.strip()
        == f"moodbot: error: {bad}:3: expected 'sentence<TAB>label' with label 0 or 1 "
        "(binary file; a three-way file must be declared), got 'no label here'"
    )


def test_evaluate_three_way_data_reports_macro_recall_and_a_3x3_confusion(moodbot_main, tmp_path: Path) -> None:
    tweets = write_tsv(tmp_path / "three.tsv", [("so bad", 0), ("at noon", 1), ("so good", 2), ("ok then", 1)])
    result = moodbot_main(["evaluate", "--data", f"{tweets}:three-way", "--json", "--plot", str(tmp_path / "3.png")])
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["three_way"] is True and report["classes"] == list(CLASSES) and report["n"] == 4
    assert len(report["confusion"]) == 3 and all(len(row) == 3 for row in report["confusion"])
    assert set(report["per_class"]) == set(CLASSES) and report["per_class"]["neutral"]["support"] == 2
    assert 0.0 <= report["macro_recall"] <= 1.0 and "flags_at_0_9" in report and report["data"] == str(tweets)
    assert (tmp_path / "3.png").read_bytes()[:4] == b"\x89PNG"
    table = moodbot_main(["evaluate", "--data", f"{tweets}:three-way"])
    assert "macro recall" in table.out and "neutral" in table.out and "flags       " in table.out
    undeclared = moodbot_main(["evaluate", "--data", str(tweets)])
    assert undeclared.code == 2 and f"{tweets}:3:" in undeclared.err
    assert "three-way file must be declared" in undeclared.err
    typo = moodbot_main(["evaluate", "--data", f"{tweets}:3way"])
    assert typo.code == 2 and "unknown suffix '3way'" in typo.err


#: The product's promise for the default encoder and head: at most 1 in 40 ordinary messages flagged, at least
#: 85 % of clearly negative ones.
MAX_NEUTRAL_FLAG_SHARE, MIN_NEGATIVE_FLAG_SHARE = 1 / 40, 0.85


def test_evaluate_reports_flags_of_the_shipped_head_on_chat(tmp_path: Path) -> None:
    """With the default encoder (mpnet) and its head, ordinary neutral server messages rarely reach the default flag
    threshold; clearly negative ones mostly do."""
    env = clean_environ() | {"MOODBOT_DATA_DIR": str(tmp_path / "var"), "MOODBOT_CACHE_DIR": str(tmp_path / "cache"),
                             "MOODBOT_DEVICE": "cpu", "MOODBOT_LOG_LEVEL": "warning"}
    reports = {}
    for name in ("neutral_chat", "negative_chat", "positive_slang_chat"):
        result = run_moodbot(["evaluate", "--data", f"{CHAT_SETS / name}.tsv:three-way", "--json"], env)
        assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
        reports[name] = json.loads(result.stdout)
    neutral, negative = reports["neutral_chat"], reports["negative_chat"]
    print(f"\nshipped head ({', '.join(neutral['head_classes'])}): {neutral['flags_at_0_9']} of {neutral['n']} neutral "
          f"chat messages flagged, {negative['flags_at_0_9']} of {negative['n']} negative ones, "
          f"{reports['positive_slang_chat']['flags_at_0_9']} of {reports['positive_slang_chat']['n']} upbeat slang")
    assert neutral["n"] >= 40 and neutral["negative_recall_at_0_9"] is None  # no negative text in it
    assert neutral["flags_at_0_9"] <= MAX_NEUTRAL_FLAG_SHARE * neutral["n"]
    assert negative["negative_recall_at_0_9"] >= MIN_NEGATIVE_FLAG_SHARE


def test_head_for_another_encoder_is_a_one_line_error(moodbot_main, other_model_dir: Path) -> None:
    result = moodbot_main(["classify", "hello"], MOODBOT_MODEL=str(other_model_dir))
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("moodbot: error: this head was trained for encoder")
        and "moodbot train" in lines[0]
    )


def test_cache_stats_and_clear(moodbot_main, cli_env: dict[str, str]) -> None:
    assert moodbot_main(["classify", "one", "two", "three", "two"]).code == 0
    stats = json.loads(moodbot_main(["cache", "stats"]).out)
    assert stats["entries"] == 3 and stats["volume_bytes"] > 0 and stats["directory"] == cli_env["MOODBOT_CACHE_DIR"]
    assert stats["size_limit_bytes"] == 512 * 1024 * 1024
    cleared = moodbot_main(["cache", "clear"])
    assert cleared.code == 0 and cleared.out.startswith("removed 3 cached vectors")
    assert json.loads(moodbot_main(["cache", "stats"], MOODBOT_CACHE_SIZE_MB="7").out)["entries"] == 0
    assert (
        json.loads(moodbot_main(["cache", "stats"], MOODBOT_CACHE_SIZE_MB="7").out)["size_limit_bytes"]
        == 7 * 1024 * 1024
    )
    again = moodbot_main(["classify", "--json", "one"])
    assert json.loads(again.out)["cached"] is False


def test_train_writes_a_matching_head_byte_for_byte(
    moodbot_main,
    monkeypatch: pytest.MonkeyPatch,
    tiny_data_dir: Path,
    tiny_model_dir: Path,
    tiny_encoder,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    args = ["train", "--data", str(tiny_data_dir / "train.tsv"), "--dev", str(tiny_data_dir / "dev.tsv"), "--extra",
            "--model", str(tiny_model_dir)]
    first = moodbot_main([*args, "--out", str(tmp_path / "a" / "head.json")])
    assert first.code == 0, first.err
    assert (
        "CV accuracy (negative vs positive)" in first.out
        and "dev accuracy" in first.out
        and f"wrote {tmp_path / 'a' / 'head.json'}" in first.out
    )
    second = moodbot_main([*args, "--out", str(tmp_path / "b.json")], MOODBOT_CACHE_DIR=str(tmp_path / "fresh-cache"))
    assert second.code == 0, second.err
    assert (tmp_path / "a" / "head.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    head = LogisticHead.load(tmp_path / "b.json")
    head.check_encoder(tiny_encoder)
    assert head.encoder.fingerprint == tiny_encoder.fingerprint
    assert head.training["date"] == "2023-11-14" and head.training["data"][0]["file"] == "train.tsv"
    classified = moodbot_main(["classify", "--json", "works"], MOODBOT_HEAD=str(tmp_path / "b.json"))
    assert_as_alone([json.loads(classified.out)], ["works"], tiny_encoder, head)  # the new head answered


def test_train_on_malformed_data_is_a_one_line_error(moodbot_main, tiny_data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "train.tsv"
    bad.write_text("good\t1\nbad\tmaybe\n")
    result = moodbot_main(
        [
            "train",
            "--data",
            str(bad),
            "--dev",
            str(tiny_data_dir / "dev.tsv"),
            "--extra",
            "--out",
            str(tmp_path / "h.json"),
        ]
    )
    assert result.code == 2 and f"{bad}:2:" in result.err and not (tmp_path / "h.json").exists()


def test_train_with_a_three_way_extra_set(moodbot_main, tiny_data_dir: Path, tiny_encoder, tmp_path: Path) -> None:
    neutral = ["the meeting is at noon", "see the pinned message", "the link is in the channel topic",
               "uploading the file now", "which version are you on", "the bot restarts at 3am"]
    rows = [("i love this server", 2), ("what a great day", 2), ("this is awful", 0), ("i hate it", 0)]
    extra = write_tsv(tmp_path / "chat.tsv", rows * 2 + [(t, 1) for t in neutral])
    out = tmp_path / "three.json"
    result = moodbot_main(["train", "--data", str(tiny_data_dir / "train.tsv"), "--dev", str(tiny_data_dir / "dev.tsv"),
                           "--extra", f"{extra}:2:three-way", "--out", str(out)])
    assert result.code == 0, result.err
    assert "macro recall" in result.out and "classes negative/neutral/positive" in result.out
    head = LogisticHead.load(out)
    assert head.three_way and head.classes == CLASSES
    assert head.training["sets"][1] == {"name": "chat", "n": 14, "weight": 2.0, "labels": "three-way"}
    assert head.training["data"][1]["labels"] == "three-way" and head.training["data"][1]["weight"] == 2.0
    assert set(head.training["cv_by_set"]["chat"]["recall"]) == set(CLASSES)
    wrong = moodbot_main(["train", "--data", f"{tiny_data_dir / 'train.tsv'}:2", "--extra", "--out", str(out)])
    assert wrong.code == 2 and "unknown suffix '2'" in wrong.err  # --data takes no weight
