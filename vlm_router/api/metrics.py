"""`GET /metrics`: Prometheus metrics of requests, latencies, tokens, queues and models.

Each app has a registry of its own. Request metrics are observed as each chat completion ends; the
queue and model gauges are read from the model registry at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from ..registry import ModelRegistry
from ..worker.procfs import rss_bytes
from . import anthropic_api, chat, completions, responses_api
from .openapi import documented
from .request_log import RequestRecord, observe_requests


class _Models:
    """Collector of what the model registry knows now: queues, loaded models, restarts, worker memory."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily(
            "vlm_router_num_requests_running", "Requests in flight, up to what the model runs at once (max_num_seqs, or 1).", labels=["model"]
        )
        waiting = GaugeMetricFamily("vlm_router_num_requests_waiting", "Requests in flight beyond what the model runs at once: queued.", labels=["model"])
        loaded = GaugeMetricFamily("vlm_router_model_loaded", "1 while the model's worker runs, else 0.", labels=["model"])
        memory = GaugeMetricFamily("vlm_router_worker_resident_memory_bytes", "Resident memory of the model's worker process.", labels=["model"])
        restarts = CounterMetricFamily("vlm_router_worker_restarts", "Times the model's worker exited unexpectedly.", labels=["model"])
        failures = CounterMetricFamily("vlm_router_model_load_failures", "Loads of the model that failed.", labels=["model"])
        for handle in self._registry.handles:
            model = [handle.name]
            running.add_metric(model, handle.running)
            waiting.add_metric(model, handle.waiting)
            loaded.add_metric(model, 0 if handle.worker_pid is None else 1)
            restarts.add_metric(model, handle.restarts)
            failures.add_metric(model, handle.load_failures)
            if handle.worker_pid is not None and (rss := rss_bytes(handle.worker_pid)) is not None:
                memory.add_metric(model, rss)
        yield from (running, waiting, loaded, memory, restarts, failures)


# Bucket bounds in seconds, from a small model on a GPU to a large one on a few CPU cores.
_TTFT = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)
_TPOT = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5)
_E2E = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
_VISION = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30)
_LOAD = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)


#: The APIs that generate: each request of theirs is counted, with its timings and tokens.
_GENERATING = frozenset({chat.PATH, completions.PATH, responses_api.PATH, anthropic_api.PATH})


class Metrics:
    """The server's Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # the router process itself: CPU, memory, open files
        self.requests = Counter(
            "vlm_router_requests", "Chat completion requests by model, HTTP status and streaming.", ["model", "status", "stream"], registry=self.registry
        )
        self.ttft = self._histogram("vlm_router_time_to_first_token_seconds", "From a request's arrival to its first output.", _TTFT)
        self.tpot = self._histogram("vlm_router_time_per_output_token_seconds", "Mean time between a choice's output tokens.", _TPOT)
        self.e2e = self._histogram("vlm_router_e2e_request_latency_seconds", "From arrival to the end of a successful answer.", _E2E)
        self.vision = self._histogram("vlm_router_vision_encoding_seconds", "Turning a request's images and videos into embeddings.", _VISION)
        self.load = self._histogram("vlm_router_model_load_seconds", "Loading a model, conversion included.", _LOAD)
        self.prompt_tokens = Counter("vlm_router_prompt_tokens", "Prompt tokens processed.", ["model"], registry=self.registry)
        self.generation_tokens = Counter("vlm_router_generation_tokens", "Tokens generated, every choice counted.", ["model"], registry=self.registry)

    def _histogram(self, name: str, text: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, text, ["model"], buckets=buckets, registry=self.registry)

    def track(self, models: ModelRegistry) -> None:
        """Report `models`' queues and states, and observe their loads."""
        self.registry.register(_Models(models))
        models.on_load = lambda model, seconds: self.load.labels(model).observe(seconds)

    def observe(self, request: web.Request, record: RequestRecord, status: int, duration: float) -> None:
        """Count a finished request of a generating API and observe its timings and tokens."""
        if request.path not in _GENERATING:
            return
        model = record.model or ""  # "" when the request named no model this server has
        self.requests.labels(model, str(status), "" if record.stream is None else str(record.stream).lower()).inc()
        if record.model is None:
            return
        if record.ttft_s is not None:
            self.ttft.labels(model).observe(record.ttft_s)
        if record.tpot_s is not None:
            self.tpot.labels(model).observe(record.tpot_s)
        if record.vision_encoding_s is not None:
            self.vision.labels(model).observe(record.vision_encoding_s)
        if record.prompt_tokens is not None and record.completion_tokens is not None:
            self.prompt_tokens.labels(model).inc(record.prompt_tokens)
            self.generation_tokens.labels(model).inc(record.completion_tokens)
            if status == 200:
                self.e2e.labels(model).observe(duration)

    @documented(summary="Prometheus metrics, in text format or OpenMetrics.")
    async def handle(self, request: web.Request) -> web.Response:
        """`GET /metrics`, in Prometheus text format, or OpenMetrics when the scraper asks for it."""
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encode(self.registry))
        response.headers["Content-Type"] = content_type
        return response


def setup_metrics(app: web.Application, models: ModelRegistry) -> None:
    """Serve `GET /metrics` on `app`, for `models` and the requests `app` answers."""
    disable_created_metrics()  # no `_created` series beside each counter and histogram, as most exporters
    metrics = Metrics()
    metrics.track(models)
    observe_requests(app, metrics.observe)
    app.router.add_get("/metrics", metrics.handle)
