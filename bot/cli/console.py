"""``moodbot console``: the offline console, which classifies each line typed at a prompt or piped on stdin.

``moodbot classify`` and ``moodbot run`` without a token use its line classification and formatting too.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TextIO

from bot.settings import Settings
from classifier.text import EmptyTextError, prepare_text, replace_surrogates

if TYPE_CHECKING:  # loading the classifier is the command's work, not `moodbot --help`'s
    from classifier.inference.router import Router

CHUNK_LINES = 256


def stdin_lines(stream: TextIO | None = None) -> Iterator[str]:
    """Lines of stdin decoded as UTF-8 with invalid bytes replaced, newline removed.

    Only ``\n`` ends a line (a trailing ``\r`` of ``\r\n`` is dropped): a stray ``\r`` inside a message
    must not split it into two results.
    """
    source = (
        stream
        if stream is not None
        else io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    )
    for line in source:
        yield line.rstrip("\r\n")


def classify_lines(
    router: Router, lines: Iterable[str], settings: Settings, chunk: int = CHUNK_LINES
) -> Iterator[dict[str, object]]:
    """One result object per input line, in order; batches ``chunk`` lines per model call. ``settings`` give the
    flag policy (``MOODBOT_FLAG_ON``, ``MOODBOT_FLAG_THRESHOLD``) the results' ``flag`` follows."""
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= chunk:
            yield from _classify_chunk(router, buffer, settings)
            buffer = []
    if buffer:
        yield from _classify_chunk(router, buffer, settings)


def _classify_chunk(router: Router, lines: list[str], settings: Settings) -> Iterator[dict[str, object]]:
    from classifier.flag_policy import flag_reasons

    prepared: dict[int, str] = {}
    for index, line in enumerate(lines):
        try:
            prepared[index] = prepare_text(line)
        except EmptyTextError:
            pass
    predictions = dict(zip(prepared, router.classify(list(prepared.values())), strict=True))
    for index, line in enumerate(lines):
        prediction = predictions.get(index)
        if prediction is None:
            yield {"text": "", "label": None, "error": "empty text"}
        else:
            reasons = flag_reasons(prediction, settings.flag_on, settings.flag_threshold)
            yield prediction.to_json(line) | {"flag": bool(reasons), "flag_reasons": [r.to_json() for r in reasons]}


def format_result(result: dict[str, object], as_json: bool) -> str:
    """A result as one JSON line, or as ``label  p_negative p_neutral p_positive  text`` for people."""
    if as_json:
        return json.dumps({k: _valid_unicode(v) for k, v in result.items()}, ensure_ascii=False)
    if result["label"] is None:
        return f"(skipped: {result['error']})"
    cached = " cached" if result["cached"] else ""
    scores = " ".join(f"{name}={value:.3f}" for name, value in result.items() if name.startswith("p_"))
    flagged = " FLAG" if result.get("flag") else ""
    where = f" [{result['encoder']}{', ' + str(result['language']) if result.get('language') else ''}]"
    return f"{result['label']:<8} {scores}{where}{cached}{flagged}  {_valid_unicode(result['text'])}"


def _valid_unicode(value: object) -> object:
    """Strings with lone surrogates (e.g. undecodable argv bytes) made printable as U+FFFD."""
    return replace_surrogates(value) if isinstance(value, str) else value


def run_console(router: Router, settings: Settings, as_json: bool = False) -> None:
    """Interactive prompt on a terminal; line-by-line classification of piped input otherwise."""
    out = sys.stdout
    if sys.stdin.isatty():
        out.write("moodbot console: type a message and press Enter (Ctrl-D to quit).\n")
        while True:
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                out.write("\n")
                return
            for result in classify_lines(router, [line], settings):
                out.write(format_result(result, as_json) + "\n")
    else:
        for result in classify_lines(router, stdin_lines(), settings):
            out.write(format_result(result, as_json) + "\n")
            out.flush()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("console", help="classify each line typed at a prompt or piped on stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.inference.router import Paths, Router

    paths = Paths.load(settings.classifier)
    try:
        run_console(Router(paths), settings, as_json=args.json)
    finally:
        paths.close()
    return 0
