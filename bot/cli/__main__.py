"""``python -m bot.cli``: the ``moodbot`` console script."""

import sys

from bot.cli import main

sys.exit(main())
