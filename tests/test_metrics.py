"""`GET /metrics`: Prometheus text that prometheus-client's parsers read, and whose values follow the requests."""

import asyncio
import json
import os
import signal

import aiohttp
import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from .conftest import ENDLESS, Samples, data_url, image_part, metric_samples, open_stream, png_bytes, scrape, user, wait_for

MODEL = "tiny-qwen2-vl"


async def ascrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        return metric_samples(await response.text())


def value(metrics: Samples, name: str, **labels: str) -> float:
    """A sample's value; one the server does not export fails the test (a default of 0 would pass for a gauge at 0)."""
    key = (name, frozenset(labels.items()))
    assert key in metrics, f"no sample {name}{labels}"
    return metrics[key]


def chat(url: str, body: dict) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=120)


def test_request_counters_latencies_and_tokens_move_with_each_request(server):
    text_only = chat(server.url, {"model": MODEL, "messages": [user("Describe.")], "max_tokens": 1}).json()["usage"]["prompt_tokens"]
    before = scrape(server.url)
    image = {"model": MODEL, "messages": [user(image_part(data_url(png_bytes())), "Describe.")], "max_tokens": 5, "ignore_eos": True}
    answered = chat(server.url, image).json()
    streamed = {"model": "demo", "messages": [user("Hello.")], "max_tokens": 3, "ignore_eos": True, "stream": True}
    events = chat(server.url, {**streamed, "stream_options": {"include_usage": True}}).text.split("\n\n")
    assert events[-2] == "data: [DONE]"
    streamed_usage = json.loads(events[-3].removeprefix("data: "))["usage"]
    assert chat(server.url, {"model": "no-such-model", "messages": [user("Hello.")]}).status_code == 404
    assert chat(server.url, {"model": MODEL, "messages": [user("Hello.")], "temperature": 7}).status_code == 400
    after = scrape(server.url)

    def moved(name: str, **labels: str) -> float:
        """How much a sample grew; a labelled sample appears with its first request, so it may be missing before."""
        return value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0.0)

    # by model (an alias counts as its model), status and streaming; a request that named no model of this server is model ""
    assert moved("vlm_router_requests_total", model=MODEL, status="200", stream="false") == 1
    assert moved("vlm_router_requests_total", model=MODEL, status="200", stream="true") == 1
    assert moved("vlm_router_requests_total", model="", status="404", stream="") == 1
    assert moved("vlm_router_requests_total", model="", status="400", stream="") == 1
    assert answered["usage"]["prompt_tokens"] > text_only, "the image's tokens are counted"
    assert moved("vlm_router_prompt_tokens_total", model=MODEL) == answered["usage"]["prompt_tokens"] + streamed_usage["prompt_tokens"]
    assert moved("vlm_router_generation_tokens_total", model=MODEL) == 5 + 3
    for histogram in ("time_to_first_token", "time_per_output_token", "e2e_request_latency"):
        assert moved(f"vlm_router_{histogram}_seconds_count", model=MODEL) == 2, histogram
        assert moved(f"vlm_router_{histogram}_seconds_sum", model=MODEL) > 0, histogram
    assert moved("vlm_router_vision_encoding_seconds_count", model=MODEL) == 1, "only the request with an image"
    assert 0 < moved("vlm_router_vision_encoding_seconds_sum", model=MODEL) < moved("vlm_router_time_to_first_token_seconds_sum", model=MODEL)
    assert moved("vlm_router_time_to_first_token_seconds_sum", model=MODEL) < moved("vlm_router_e2e_request_latency_seconds_sum", model=MODEL)
    inf = {"model": MODEL, "le": "+Inf"}
    assert moved("vlm_router_e2e_request_latency_seconds_bucket", **inf) == 2

    assert value(after, "vlm_router_model_loaded", model=MODEL) == 1
    assert value(after, "vlm_router_model_load_seconds_count", model=MODEL) >= 1
    assert value(after, "vlm_router_worker_resident_memory_bytes", model=MODEL) > 10e6
    assert (value(after, "vlm_router_num_requests_running", model=MODEL), value(after, "vlm_router_num_requests_waiting", model=MODEL)) == (0, 0)
    assert value(after, "vlm_router_worker_restarts_total", model=MODEL) == 0
    assert value(after, "process_resident_memory_bytes") > 10e6, "the router process's own metrics"
    configured = {dict(labels)["model"] for name, labels in after if name == "vlm_router_model_loaded"}
    assert {MODEL, "tiny-llava", "no-video"} <= configured, "every configured model, loaded or not"


def test_openmetrics_when_the_scraper_asks_for_it(server):
    response = httpx.get(server.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=30)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    names = {family.name for family in parse_openmetrics(response.text)}
    assert {"vlm_router_requests", "vlm_router_time_to_first_token_seconds", "vlm_router_num_requests_waiting"} <= names


async def test_queue_gauges_restarts_and_loads(start):
    server = await start([{"name": "m", "scheduler": {"continuous_batching": False}, "max_waiting": 1}])
    url = server.url.rstrip("/")
    assert value(await ascrape(url), "vlm_router_model_loaded", model="m") == 0
    async with aiohttp.ClientSession() as session:
        running = await open_stream(session, server, "m")
        queued = asyncio.ensure_future(server.ask("m", max_tokens=ENDLESS))
        await wait_for(lambda: _in_flight(server, 2))
        metrics = await ascrape(url)
        assert value(metrics, "vlm_router_num_requests_running", model="m") == 1
        assert value(metrics, "vlm_router_num_requests_waiting", model="m") == 1, "one request at a time: the second waits"
        assert value(metrics, "vlm_router_model_loaded", model="m") == 1
        assert value(metrics, "vlm_router_model_load_seconds_count", model="m") == 1

        os.kill(server.registry.get("m").worker_pid, signal.SIGKILL)
        await asyncio.gather(queued, return_exceptions=True)
        running.close()
    await wait_for(lambda: _in_flight(server, 0))
    metrics = await ascrape(url)
    assert value(metrics, "vlm_router_worker_restarts_total", model="m") == 1
    assert value(metrics, "vlm_router_model_loaded", model="m") == 0
    assert value(metrics, "vlm_router_requests_total", model="m", status="503", stream="false") == 1

    assert (await server.ask("m", max_tokens=2)).usage.completion_tokens == 2
    metrics = await ascrape(url)
    assert value(metrics, "vlm_router_model_loaded", model="m") == 1
    assert value(metrics, "vlm_router_model_load_seconds_count", model="m") == 2, "the new worker's load"
    assert value(metrics, "vlm_router_num_requests_running", model="m") == 0


async def _in_flight(server, count: int) -> bool:
    return server.registry.get("m").in_flight == count
