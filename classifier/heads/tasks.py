"""What each kind of head predicts: the one table a new head is added to.

A task names a head (``sentiment``, ``offensive``, ...), its classes and how a data file's labels map onto them.
Sentiment is three-way (binary files such as SST-2 say only negative or positive); a moderation signal is binary:
``other`` or the signal itself, whose probability is the signal's score (``p_offensive``). Kept free of numpy so
that the bot's store and settings can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from classifier.heads.sentiment import CLASSES

#: A moderation head's first class: anything but its signal.
OTHER = "other"


@dataclass(frozen=True)
class Task:
    """One head's task: its name, the class lists a head for it may have, and what it is for."""

    name: str
    class_sets: tuple[tuple[str, ...], ...]
    title: str  # how cards and reports name the signal
    moderation: bool  # a harm signal (else: sentiment)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class list a newly trained head has."""
        return self.class_sets[0]

    @property
    def signal(self) -> str:
        """The class whose probability a moderation head reports (its own name)."""
        return self.classes[-1]


def _moderation(name: str, title: str) -> Task:
    return Task(name, ((OTHER, name),), title, moderation=True)


SENTIMENT = Task("sentiment", (CLASSES, ("negative", "positive")), "Sentiment", moderation=False)
#: Insults, threats, profanity aimed at someone (OLID's definition), in chat and tweets.
OFFENSIVE = _moderation("offensive", "Offensive")
#: Hate against a group (HatEval: immigrants, women).
HATE = _moderation("hate", "Hate")
#: Threats of violence against a person.
THREAT = _moderation("threat", "Threat")
#: Encouraging someone to harm or kill themselves ("kys").
SELF_HARM = _moderation("self_harm", "Self-harm")
#: Sexual content: explicit text, soliciting images or sex, sextortion, grooming, porn spam (Perspective's
#: SEXUALLY_EXPLICIT and more).
SEXUAL = _moderation("sexual", "Sexual")

TASKS = {task.name: task for task in (SENTIMENT, OFFENSIVE, HATE, THREAT, SELF_HARM, SEXUAL)}


def task_named(name: str) -> Task:
    """The task called ``name``; unknown names are a ``ValueError`` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown head task {name!r}: expected one of {', '.join(TASKS)}") from None
