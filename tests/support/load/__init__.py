"""Load driver for the real bot: ``python -m tests.support.load --messages 10000 --channels 50``.

It starts a fake Discord server (:mod:`tests.support.load.server`) and ``moodbot run`` as subprocesses,
injects bursts of distinct negative/positive messages across many channels, and checks that every
message was classified once, every flag stored and posted once, memory stayed bounded and the
bot logged no traceback. See :func:`tests.support.load.driver.run_load`.
"""
