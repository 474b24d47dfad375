"""Test support code, imported by tests and conftests: never collected, never a fixture.

``helpers`` (paths, token, sample texts, environment, CLI runner, poller, "pings nobody" check), ``classifier``
(a tiny model folder and an instrumented classifier), ``redis_server`` (a throwaway redis-server),
``inference_server`` (``moodbot serve`` as a subprocess, and the listening-socket check), ``bot``
(running the bot in-process, reading its posts), ``fake_discord`` (a Discord REST + gateway fake on loopback),
``load`` (the load and reliability harness) and ``cluster`` (the scale-out topology: every server, a bot per shard).
"""
