"""How each shipped head is trained: the one table ``make head`` and ``moodbot train --recipe`` read.

A recipe names its encoder, task and pooling, its training files, the file its dev figure comes from and the files
it is only measured on (held out from training: per-language validation splits). File names are relative to a data
root: ``shared/...`` is the shared data folder (``../shared/data``), ``own/...`` the project's own sets
(``classifier/datasets``). Every file's licence is recorded in the head it trains (see :data:`LICENCES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OWN_DATA = Path(__file__).resolve().parents[1] / "datasets"

UMSAB_LANGUAGES = ("arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish")

#: The licence of each data file a shipped head is trained on, by its folder under the data root.
LICENCES = {
    "shared/sst2": "SST-2 (Stanford Sentiment Treebank): no licence stated by the source repository",
    "shared/tweeteval": "TweetEval (cardiffnlp/tweeteval): no licence stated; tweets under Twitter's terms",
    "shared/multilingual/umsab": "UMSAB (cardiffnlp/xlm-t): Apache-2.0",
    "shared/multilingual/rusentiment": "RuSentiment: CC BY-NC-SA 4.0 (non-commercial)",
    "shared/moderation/offensive": "OLID / OffensEval 2019 via TweetEval: no licence stated",
    "shared/moderation/hate": "HatEval 2019 via TweetEval: no licence stated",
    "shared/moderation/conda": "CONDA (usydnlp/CONDA): no licence stated",
    "shared/moderation/offenseval2020": "OffensEval 2020 (shaoncsecu/JAK-OffensEval): no licence stated",
    "shared/moderation/germeval2018": "GermEval 2018 (uds-lsv/GermEval-2018-Data): CC-BY-4.0",
    "own/moderation": "moodbot's own sets (classifier/datasets/moderation): MIT",
}


@dataclass(frozen=True)
class Recipe:
    """One shipped head's training: ``data`` and ``dev`` are ``moodbot train`` file arguments
    (``PATH[:WEIGHT][:three-way]``) under the data root; ``measured`` files are evaluated, never trained on."""

    encoder: str  # a bundled encoder's short name
    task: str
    pooling: str
    data: tuple[str, ...]
    dev: str
    measured: tuple[str, ...] = ()
    c_grid: tuple[float, ...] = ()  # empty: the training default
    folds: int = 5

    @property
    def name(self) -> str:
        """``<encoder>.<task>``: also the shipped file's name (``classifier/shipped/<name>.json``)."""
        return f"{self.encoder}.{self.task}"

    def licences(self) -> list[str]:
        """The licences of the files this recipe trains on, each once."""
        found = [text for prefix, text in LICENCES.items() if any(spec.startswith(prefix) for spec in self.data)]
        return list(dict.fromkeys(found))


def resolve(spec: str, shared: Path) -> str:
    """A recipe's file argument with its root replaced by a real folder."""
    root, _, rest = spec.partition("/")
    base = {"shared": shared, "own": OWN_DATA}.get(root)
    if base is None:
        raise ValueError(f"recipe file {spec!r} must start with shared/ or own/")
    return f"{base / rest}"


_SST2_AND_TWEETS = ("shared/sst2/train.tsv", "shared/tweeteval/val_3class.tsv:1:three-way")

#: Moderation heads: insults, threats and profanity in tweets (OLID) and game chat (CONDA); the own chat sets (threats,
#: self-harm encouragement, harassment shorthand, and benign complaints as hard negatives) weigh more, being few.
_ENGLISH_OFFENSIVE = ("shared/moderation/offensive_train.tsv", "shared/moderation/conda_train.tsv")
#: OffensEval 2020 without its Turkish part (31,756 rows, more than all the others together): on this 2-core box its
#: embedding alone would take longer than the other sets' training; Turkish is read through the other languages.
_OTHER_OFFENSIVE = tuple(
    f"shared/moderation/offenseval2020_{language}_train.tsv" for language in ("arabic", "danish", "greek")
) + ("shared/moderation/germeval2018_train.tsv",)
#: The multilingual offensive head's public sets. No CONDA: English game chat goes to mpnet on the default paths.
_MULTILINGUAL_OFFENSIVE = _ENGLISH_OFFENSIVE[:1] + _OTHER_OFFENSIVE
_OWN_NAMES = ("threats", "self_harm", "harassment", "benign_negative", "profane_benign")
_OWN_MODERATION = tuple(f"own/moderation/{name}.tsv:3" for name in _OWN_NAMES)


def _harmless_rows(files: tuple[str, ...]) -> tuple[str, ...]:
    """The files as data that keeps only their rows labelled 0 (the ``:negatives`` suffix)."""
    return tuple(f"{spec}:negatives" for spec in files)


#: Threat, self-harm and sexual-content heads: no public set here labels any of them, so their positives are the own
#: sets'; what they are not comes from the other own sets' rows (harmless ones only: ``negatives``), the benign
#: negatives, and inoffensive tweets and game chat (OLID's and CONDA's rows labelled 0) as ordinary text.
_ORDINARY = _harmless_rows(_ENGLISH_OFFENSIVE)
_HARMLESS_OWN = tuple(f"own/moderation/{name}.tsv:3" for name in ("benign_negative", "profane_benign"))


def _own_signal(name: str, *others: str, ordinary: tuple[str, ...] = _ORDINARY) -> tuple[str, ...]:
    """An own set as a head's signal, the other own sets' harmless rows, the benign negatives and ordinary text."""
    return (
        (f"own/moderation/{name}.tsv:3",) + tuple(f"own/moderation/{o}.tsv:3:negatives" for o in others)
        + _HARMLESS_OWN + ordinary
    )


#: The own sets with a ``<name>_multilingual.tsv`` beside them: their messages written in the other languages.
_TRANSLATED = ("threats", "self_harm", "sexual")


def _multilingual_own_signal(name: str, *others: str) -> tuple[str, ...]:
    """:func:`_own_signal` for the multilingual path: the English own set and its translations into the UMSAB and
    OffensEval languages as the signal, and inoffensive tweets in those languages as ordinary text."""
    ordinary = _harmless_rows(_MULTILINGUAL_OFFENSIVE)
    translated = tuple(f"own/moderation/{o}_multilingual.tsv:3:negatives" for o in others if o in _TRANSLATED)
    return (f"own/moderation/{name}_multilingual.tsv:3",) + translated + _own_signal(name, *others, ordinary=ordinary)


_OLID_VAL = "shared/moderation/offensive_val.tsv"
_HATE_VAL = "shared/moderation/hate_val.tsv"
#: Moderation heads train on up to 40,000 rows: 3 folds keep `make head` within reach of a 2-core machine.
_SIGNAL_C = (0.0003, 0.001, 0.003)
_SIGNAL_FOLDS = 3

_UMSAB = "shared/multilingual/umsab"
_RUSENTIMENT = "shared/multilingual/rusentiment"

#: The heads whose signal only the own sets label: (task, its own set, the own sets whose harmless rows it learns from).
_OWN_SIGNALS = (
    ("threat", "threats", ("self_harm", "harassment")),
    ("self_harm", "self_harm", ("threats", "harassment")),
    ("sexual", "sexual", ("threats", "self_harm", "harassment")),
)


def _own_signal_recipes(encoder: str, data: Callable[..., tuple[str, ...]]) -> tuple[Recipe, ...]:
    """One encoder's threat, self-harm and sexual-content heads. Their dev file is OLID's validation split: what share
    of ordinary and offensive tweets they flag."""
    return tuple(
        Recipe(encoder, task, "mean@3,6,9,12", data(own, *others), _OLID_VAL, c_grid=_SIGNAL_C, folds=_SIGNAL_FOLDS)
        for task, own, others in _OWN_SIGNALS
    )


RECIPES = (
    Recipe("mpnet", "sentiment", "mean@3,6,9,12", _SST2_AND_TWEETS, "shared/sst2/dev.tsv"),
    Recipe("minilm", "sentiment", "mean@0,2,4,6", _SST2_AND_TWEETS, "shared/sst2/dev.tsv"),
    # No TweetEval: its validation tweets overlap UMSAB's English validation split, which is measured here.
    Recipe(
        "e5", "sentiment", "mean@3,6,9,12",
        tuple(f"{_UMSAB}/{language}_train.tsv:1:three-way" for language in UMSAB_LANGUAGES)
        + (f"{_RUSENTIMENT}/random_posts.tsv:1:three-way", f"{_RUSENTIMENT}/preselected_posts.tsv:1:three-way"),
        f"{_UMSAB}/english_val.tsv:three-way",
        tuple(f"{_UMSAB}/{language}_val.tsv:three-way" for language in UMSAB_LANGUAGES if language != "english"),
        c_grid=(0.0001, 0.0002, 0.0005, 0.001, 0.002),
    ),
    Recipe(
        "mpnet", "offensive", "mean@3,6,9,12", _ENGLISH_OFFENSIVE + _OWN_MODERATION, _OLID_VAL, c_grid=_SIGNAL_C,
        folds=_SIGNAL_FOLDS,
    ),
    Recipe(
        "e5", "offensive", "mean@3,6,9,12", _MULTILINGUAL_OFFENSIVE + _OWN_MODERATION, _OLID_VAL,
        c_grid=_SIGNAL_C, folds=_SIGNAL_FOLDS,
    ),
    Recipe(
        "mpnet", "hate", "mean@3,6,9,12", ("shared/moderation/hate_train.tsv",), _HATE_VAL, c_grid=_SIGNAL_C,
        folds=_SIGNAL_FOLDS,
    ),
    *_own_signal_recipes("mpnet", _own_signal),
    *_own_signal_recipes("e5", _multilingual_own_signal),
    Recipe(
        "e5", "hate", "mean@3,6,9,12", ("shared/moderation/hate_train.tsv",), _HATE_VAL, c_grid=_SIGNAL_C,
        folds=_SIGNAL_FOLDS,
    ),
)


def recipe_named(name: str) -> Recipe:
    """The recipe called ``name`` (``<encoder>.<task>``); unknown names are a ``ValueError`` listing the known ones."""
    for recipe in RECIPES:
        if recipe.name == name:
            return recipe
    raise ValueError(f"unknown recipe {name!r}: expected one of {', '.join(r.name for r in RECIPES)}")
