"""``moodbot serve``: a one-node Ray cluster on loopback running :class:`~classifier.serving.app.Inference` behind
Serve's HTTP proxy, until SIGINT or SIGTERM.

Ray's own services (GCS, raylet, object store, workers) stay on 127.0.0.1 whatever ``host`` is: only the HTTP
proxy listens on ``host``, so another machine reaches the model through the HTTP route and nothing else. Ray
is imported here and in the app module only (the ``scale`` extra installs it).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from classifier.config import ClassifierConfig, WorkerConfig

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
APP_NAME = "moodbot"
# Without the first, Ray also binds the machine's network address; the second keeps usage reports off.
RAY_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# no access log line per request: at thousands of texts per second it would cost more than the route
SERVE_LOGGING = {"log_level": "WARNING", "enable_access_log": False}


class ServeError(RuntimeError):
    """The inference service could not start; the message says why."""


@dataclass(frozen=True)
class ServeOptions:
    """Where the HTTP route listens and how many replicas serve it."""

    host: str = LOOPBACK
    port: int = 8000
    replicas: int = 1


def replica_resources(cluster: Mapping[str, float], replicas: int, device: str) -> dict[str, float]:
    """A GPU per replica when the node has GPUs and the device is not ``cpu`` (a share of one when replicas
    outnumber them), else a share of the CPUs."""
    gpus = float(cluster.get("GPU", 0.0))
    if gpus > 0 and device != "cpu":
        return {"num_gpus": min(1.0, gpus / replicas)}
    return {"num_cpus": float(cluster.get("CPU", 1.0)) / replicas}


def serve_until_stopped(config: ClassifierConfig, batching: WorkerConfig, options: ServeOptions) -> int:
    """Start Ray and the application, serve until SIGINT/SIGTERM, then shut both down."""
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        import ray
        from ray import serve
    except ImportError as error:
        raise ServeError("`moodbot serve` needs Ray Serve: pip install 'moodbot[scale]'") from error
    from classifier.serving.app import Inference

    _check_port(options.host, options.port)  # before Ray's start-up, not after it
    started = time.perf_counter()
    ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False, logging_level=logging.WARNING)
    # after ray.init, whose own SIGTERM handler aborts the driver and leaves Ray's agents behind
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(http_options={"host": options.host, "port": options.port}, logging_config=SERVE_LOGGING)
        resources = replica_resources(ray.cluster_resources(), options.replicas, config.device)
        app = Inference.options(
            num_replicas=options.replicas, ray_actor_options=resources,
            max_ongoing_requests=2 * batching.max_batch,  # room to gather the next batch while one runs
        ).bind(config, batching)
        try:
            serve.run(app, name=APP_NAME, route_prefix="/", logging_config=SERVE_LOGGING)
        except RuntimeError as error:  # Serve gave up after its retries: say what the replicas raised
            raise ServeError(f"the inference application did not start: {_replica_error(serve) or error}") from None
        log.info("moodbot inference ready on http://%s:%d in %.1f s: %d replica(s), %s each",
                 options.host, options.port, time.perf_counter() - started, options.replicas, resources)
        stop.wait()
        log.info("stopping the inference service")
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return 0


def _check_port(host: str, port: int) -> None:
    """Raise :class:`ServeError` when nothing can listen on ``host:port`` (in use, or not this machine's address)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _replica_error(serve: Any) -> str:
    """The last line of the failed deployment's message: the exception a replica raised (a ``HeadError``, say)."""
    application = serve.status().applications.get(APP_NAME)
    messages = [d.message for d in application.deployments.values()] if application is not None else []
    lines = [line.strip() for message in messages for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else ""
