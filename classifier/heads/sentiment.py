"""The classes a head predicts, and how labels in data files and the feedback table map onto them.

Class indices follow TweetEval's three-way labels (0 negative, 1 neutral, 2 positive), so a three-way data file's
labels are class indices as they are. Binary files (SST-2: 0 negative, 1 positive) have no neutral class: their
1 means positive (index 2). Kept free of numpy so that the bot's store and settings can import it cheaply.
"""

from __future__ import annotations

CLASSES = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = range(len(CLASSES))
#: A binary file's label -> class index.
BINARY_TO_CLASS = {0: NEGATIVE, 1: POSITIVE}
