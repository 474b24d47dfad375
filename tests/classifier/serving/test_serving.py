"""``moodbot serve`` (Ray Serve) and bot processes with ``MOODBOT_INFERENCE_URL``: real Ray, real HTTP, the tiny model.

The tests share one module-scoped server (a Ray start costs seconds) and leave it as it is; the outage test stops
and restarts a server of its own.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bot.settings import SettingsError, load_settings
from classifier.config import ClassifierConfig
from classifier.inference.classifier import Classifier
from classifier.inference.worker import BatchingWorker, ClassificationError
from classifier.serving.client import REQUEST_TEXTS, InferenceError, InferenceUnavailable, RemoteEncoder
from classifier.serving.protocol import (
    EMBED_PATH,
    INFO_PATH,
    MAX_REQUEST_TEXTS,
    STATS_PATH,
    decode_vectors,
    service_infos,
)
from classifier.serving.server import replica_resources
from tests.support.classifier import alone, assert_as_alone
from tests.support.helpers import REPO_ROOT, SST2_DEV, clean_environ, free_port, poll_until, run_moodbot
from tests.support.inference_server import InferenceServer, is_loopback, listening_sockets

pytest.importorskip("ray.serve", reason="the serving tests need the scale extra: pip install -e '.[test,scale]'")

TEXTS = ["i love this server", "this update is awful", "what a great day", "nothing works and it is broken"]


@pytest.fixture(scope="module")
def serve_env(tiny_model_dir: Path, tiny_head_path: Path) -> dict[str, str]:
    return clean_environ() | {
        "MOODBOT_MODEL": str(tiny_model_dir), "MOODBOT_HEAD": str(tiny_head_path), "MOODBOT_DEVICE": "cpu",
        "MOODBOT_PRECISION": "fp32", "MOODBOT_LOG_LEVEL": "info",  # fp32: compared with the tiny_encoder fixture's
    }


@pytest.fixture(scope="module")
def served(serve_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    server = InferenceServer(tmp_path_factory.mktemp("serve"), serve_env).start()
    yield server
    assert server.stop() == [], "Ray left processes behind after SIGTERM"


@pytest.fixture
def own_server(serve_env: dict[str, str], tmp_path: Path):
    """A server for one test, which may stop and restart it: no other test sees its outages."""
    server = InferenceServer(tmp_path / "serve", serve_env).start()
    yield server
    assert server.stop() == [], "Ray left processes behind after SIGTERM"


def remote_config(url: str, head: Path, cache_dir: Path, timeout_s: float = 20.0) -> ClassifierConfig:
    return ClassifierConfig(head=head, cache_dir=cache_dir, inference_url=url, inference_timeout_s=timeout_s)


def test_info_names_the_served_encoder_and_head(served: InferenceServer, tiny_encoder, tiny_head) -> None:
    [info] = service_infos(served.get(INFO_PATH))  # one path configured: one encoder served
    assert info.identity == tiny_encoder.identity
    assert (info.dim, info.cache_namespace) == (tiny_encoder.dim, tiny_encoder.cache_namespace)
    assert info.head.endswith(tiny_head.to_dict()["checksum"])
    assert info.max_batch == 512 and info.max_wait_ms == 5.0  # the settings' defaults reach @serve.batch


def test_served_vectors_equal_in_process(served: InferenceServer, make_classifier) -> None:
    """An embedding service: vectors only (every head is applied by the bot processes), for the encoder named."""
    local = make_classifier()
    request = {"texts": TEXTS, "encoder": local.encoder.fingerprint}
    status, body = served.post(EMBED_PATH, json.dumps(request).encode())
    assert status == 200 and body["namespace"] == local.encoder.cache_namespace
    assert all(set(result) == {"vector"} for result in body["results"])
    vectors = decode_vectors([result["vector"] for result in body["results"]], local.encoder.dim)
    np.testing.assert_allclose(vectors, local.embed(TEXTS), rtol=1e-4, atol=1e-5)
    unnamed = served.post(EMBED_PATH, json.dumps({"texts": TEXTS}).encode())  # one encoder served: it is the one
    assert unnamed[0] == 200 and unnamed[1]["namespace"] == local.encoder.cache_namespace
    other = served.post(EMBED_PATH, json.dumps({"texts": TEXTS, "encoder": "0" * 32}).encode())
    assert other[0] == 400 and "serves the encoders" in other[1]["error"]


def test_a_remote_classifier_matches_the_in_process_one(
    served: InferenceServer, make_classifier, tiny_head_path: Path, tmp_path: Path
) -> None:
    remote = Classifier.load(remote_config(served.url, tiny_head_path, tmp_path / "remote-cache"))
    try:
        assert isinstance(remote.encoder, RemoteEncoder)
        ours, theirs = remote.classify(TEXTS), make_classifier().classify(TEXTS)
    finally:
        remote.close()
    assert [p.label for p in ours] == [p.label for p in theirs]
    np.testing.assert_allclose([p.p_positive for p in ours], [p.p_positive for p in theirs], atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"not json", 400, "Expecting value"),
        (b"\xff\xfe", 400, ""),
        (b'["a list"]', 400, '{"texts": [string, ...]}'),
        (b'{"texts": "one string"}', 400, '{"texts": [string, ...]}'),
        (b'{"texts": ["ok", 3]}', 400, '{"texts": [string, ...]}'),
        (b'{"texts": ["ok", " \\u0000 "]}', 400, "text 1 is empty"),
        (json.dumps({"texts": ["x"] * (MAX_REQUEST_TEXTS + 1)}).encode(), 400, f"at most {MAX_REQUEST_TEXTS}"),
    ],
)
def test_bad_requests_get_a_clear_error(served: InferenceServer, body: bytes, status: int, error: str) -> None:
    answer = served.post(EMBED_PATH, body)
    assert answer[0] == status and error in answer[1]["error"]


def test_unknown_routes_and_an_empty_batch(served: InferenceServer) -> None:
    assert served.post("/v1/nothing", b"{}") == (404, {"error": "no route POST /v1/nothing"})
    status, body = served.post(EMBED_PATH, b'{"texts": []}')
    assert status == 200 and body["results"] == []


async def test_worker_sends_misses_in_batches_and_answers_hits_itself(
    served: InferenceServer, tiny_head_path: Path, tmp_path: Path
) -> None:
    texts = [f"message number {i} about the server" for i in range(300)]
    classifier = Classifier.load(remote_config(served.url, tiny_head_path, tmp_path / "cache"))
    try:
        before = served.get(STATS_PATH)
        async with BatchingWorker(classifier, max_batch=512) as worker:
            first = await asyncio.gather(*(worker.classify(text) for text in texts + texts[:50]))  # 50 duplicates
            misses = served.get(STATS_PATH)
            again = await asyncio.gather(*(worker.classify(text) for text in texts))
        after = served.get(STATS_PATH)
    finally:
        classifier.close()
    assert misses["texts"] - before["texts"] == len(texts)  # each distinct miss sent once
    sent = misses["requests"] - before["requests"]
    assert sent <= worker.stats.batches + math.ceil(len(texts) / REQUEST_TEXTS)  # requests of up to REQUEST_TEXTS
    assert misses["batches"] - before["batches"] <= sent  # and the server batched them further
    assert after == misses  # the second burst: every text a cache hit, answered without the service
    assert worker.stats.memory_hits >= len(texts) and all(p.cached for p in again)
    assert not any(p.cached for p in first[: len(texts)])
    np.testing.assert_allclose([p.p_positive for p in again], [p.p_positive for p in first[: len(texts)]], atol=1e-12)


BOT_PROCESS = """
import asyncio, json, sys
from bot.settings import load_settings
from classifier.inference.classifier import Classifier
from classifier.inference.worker import BatchingWorker
import bot.client, bot.runner  # the bot's own modules, as `moodbot run` imports them

async def main():
    settings = load_settings(dotenv_path=None)
    classifier = Classifier.load(settings.classifier)
    try:
        async with BatchingWorker.configured(classifier, settings.worker) as worker:
            labels = [p.label for p in await worker.classify_many(sys.argv[1:])]
    finally:
        classifier.close()
    heavy = sorted(name for name in ("torch", "transformers", "ray") if name in sys.modules)
    # VmHWM: this program's peak; ru_maxrss would keep the forking pytest's across exec
    peak_mb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
    print(json.dumps({"labels": labels, "heavy": heavy, "encoder": classifier.encoder.describe(), "peak_mb": peak_mb}))

asyncio.run(main())
"""


def test_a_bot_process_with_an_inference_url_never_imports_torch_and_stays_small(
    served: InferenceServer, tiny_encoder, tiny_head, tiny_head_path: Path, tmp_path: Path
) -> None:
    env = clean_environ() | {
        "MOODBOT_INFERENCE_URL": served.url, "MOODBOT_HEAD": str(tiny_head_path), "MOODBOT_DATA_DIR": str(tmp_path),
        "MOODBOT_MODEL": str(tmp_path / "no-such-model"),  # the service decides: this process loads no model
    }
    result = subprocess.run([sys.executable, "-c", BOT_PROCESS, *TEXTS], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["heavy"] == []
    assert output["labels"] == [alone(tiny_encoder, tiny_head, text).label for text in TEXTS]  # the served model's
    assert output["encoder"].endswith(f"via {served.url}")
    assert output["peak_mb"] < 250  # the target for a bot process without the model


def test_nothing_of_the_cluster_listens_beyond_loopback(served: InferenceServer) -> None:
    sockets = listening_sockets(served.process_tree())
    assert ("tcp", f"127.0.0.1:{served.port}") in sockets  # the HTTP route, and the check sees Ray's processes
    assert len(sockets) >= 5  # GCS, raylet, proxy, replica...: the whole tree, not only the route
    assert [address for _, address in sockets if not is_loopback(address)] == []


def test_the_head_must_fit_the_served_encoder(served: InferenceServer, tmp_path: Path) -> None:
    with pytest.raises(InferenceError, match="does not serve the encoder this head was trained for"):
        Classifier.load(ClassifierConfig(model="mpnet", cache_dir=tmp_path, inference_url=served.url))


def test_no_service_at_the_url_is_a_clear_error_within_the_timeout(tiny_head_path: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(InferenceUnavailable, match=r"did not answer GET /v1/info: \d+ attempt\(s\)"):
        Classifier.load(remote_config(url, tiny_head_path, tmp_path, timeout_s=1.5))
    assert time.monotonic() - started < 3.0


async def test_a_service_that_never_answers_times_out(tiny_head_path: Path, tmp_path: Path) -> None:
    """A peer that accepts connections and never replies: the caller's wait ends at the timeout."""
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(InferenceUnavailable, match="TimeoutError"):
            await asyncio.to_thread(RemoteEncoder, f"http://127.0.0.1:{port}", 1.0)
        assert time.monotonic() - started < 2.5
    finally:
        server.close()


def test_bench_measures_the_serve_path_beside_in_process(
    served: InferenceServer, serve_env: dict[str, str], tmp_path: Path
) -> None:
    env = serve_env | {"MOODBOT_CACHE_DIR": str(tmp_path / "cache"), "MOODBOT_LOG_LEVEL": "error"}
    arguments = ["bench", "--json", "--messages", "40", "--data", str(SST2_DEV), "--inference-url", served.url]
    result = run_moodbot(arguments, env, timeout=240)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = json.loads(result.stdout)
    assert figures["serve_msgs_per_s"] > 0 and figures["worker_msgs_per_s"] > 0  # both paths, one run
    assert 0 < figures["serve_p50_ms"] <= figures["serve_p99_ms"]
    assert figures["serve_requests"] >= figures["serve_batches"] >= 1 and figures["serve_requests"] <= 40
    assert figures["serve_label_agreement"] == 1.0 and figures["serve_max_prob_diff"] < 1e-5
    assert figures["serve_encoder"].endswith(f"via {served.url}")


def test_serve_on_a_port_in_use_is_a_clear_error_before_ray_starts(
    served: InferenceServer, serve_env: dict[str, str]
) -> None:
    started = time.monotonic()
    result = run_moodbot(["serve", "--port", str(served.port)], serve_env, timeout=60)
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{served.port}" in result.stderr.decode()
    assert time.monotonic() - started < 20  # no Ray start-up was paid for it


@pytest.mark.parametrize(
    ("cluster", "replicas", "device", "expected"),
    [
        ({"CPU": 16.0, "GPU": 2.0}, 2, "auto", {"num_gpus": 1.0}),
        ({"CPU": 16.0, "GPU": 1.0}, 2, "auto", {"num_gpus": 0.5}),  # two replicas share the one GPU
        ({"CPU": 16.0, "GPU": 1.0}, 1, "cpu", {"num_cpus": 16.0}),  # MOODBOT_DEVICE=cpu asks for no GPU
        ({"CPU": 2.0}, 4, "auto", {"num_cpus": 0.5}),
    ],
)
def test_replicas_take_a_gpu_when_there_is_one(cluster: dict, replicas: int, device: str, expected: dict) -> None:
    assert replica_resources(cluster, replicas, device) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("MOODBOT_INFERENCE_URL", "localhost:8000"), ("MOODBOT_INFERENCE_URL", "redis://x"),
     ("MOODBOT_INFERENCE_TIMEOUT_S", "0"), ("MOODBOT_INFERENCE_TIMEOUT_S", "soon")],
)
def test_bad_inference_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value}, dotenv_path=None)


async def test_outage_fails_callers_cleanly_holds_the_queue_and_recovers(
    own_server: InferenceServer, tiny_encoder, tiny_head, tiny_head_path: Path, tmp_path: Path
) -> None:
    """The test's own server goes down and comes back on its port."""
    server = own_server
    short = Classifier.load(remote_config(server.url, tiny_head_path, tmp_path / "short", timeout_s=2.0))
    long = Classifier.load(remote_config(server.url, tiny_head_path, tmp_path / "long", timeout_s=150.0))
    try:
        async with BatchingWorker(short) as quick, BatchingWorker(long, max_batch=2, queue_size=3) as patient:
            before = await quick.classify("before the outage")
            assert_as_alone([before], ["before the outage"], tiny_encoder, tiny_head)
            assert server.stop() == []

            started = time.monotonic()
            with pytest.raises(ClassificationError, match="MOODBOT_INFERENCE_TIMEOUT_S=2"):
                await quick.classify("during the outage")
            assert time.monotonic() - started < 4.0  # the timeout, not a hang

            texts = [f"queued message {i}" for i in range(12)]
            waiting = [asyncio.ensure_future(patient.classify(text)) for text in texts]
            await poll_until(lambda: patient.queued == 3, what="the patient worker's queue to fill up")
            assert not any(task.done() for task in waiting)  # back-pressure, nothing dropped
            server.start()  # the same port
            results = await asyncio.wait_for(asyncio.gather(*waiting), timeout=120)
            assert_as_alone(results, texts, tiny_encoder, tiny_head)  # every caller, its own text's answer

            after = await quick.classify("after the outage")  # the same client recovers
            assert_as_alone([after], ["after the outage"], tiny_encoder, tiny_head)
            assert quick.stats.failed_batches == 1 and patient.stats.failed_batches == 0
    finally:
        short.close()
        long.close()


def test_a_closed_client_refuses_work(served: InferenceServer) -> None:
    encoder = RemoteEncoder(served.url, 5.0)
    encoder.close()
    encoder.close()  # idempotent
    with pytest.raises(InferenceError, match="closed"):
        encoder.embed(["too late"])
