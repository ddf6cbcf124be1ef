"""The batching worker admits requests with media one per step, so running streams advance between two encodes."""

from __future__ import annotations

import threading
from multiprocessing import Pipe
from typing import Any

import numpy as np
import openvino_genai

from vlm_router.conversation import Image, Message, Text
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.generation import SamplingParams
from vlm_router.worker.budget import Budget
from vlm_router.worker.process import _Batching, _Shutdown
from vlm_router.worker.protocol import Failed, Finished, Generate


class Recording:
    """The real pipeline, with a log of its `add_request` and `step` calls in order."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self.calls: list[str] = []

    def add_request(self, request_id: int, *args: Any) -> Any:
        self.calls.append(f"add {request_id}")
        return self._pipeline.add_request(request_id, *args)

    def step(self) -> None:
        self.calls.append("step")
        self._pipeline.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)


def test_requests_with_images_join_one_per_step_after_text_ones(tiny_qwen):
    pipeline = Recording(openvino_genai.ContinuousBatchingPipeline(str(tiny_qwen), openvino_genai.SchedulerConfig(), "CPU"))
    family = Qwen2VLFamily()
    router, worker = Pipe()
    params = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)
    image = np.full((56, 56, 3), 128, dtype=np.uint8)
    with_image = family.build_prompt([Message("user", [Image(0), Text("Describe.")])])
    text_only = family.build_prompt([Message("user", [Text("Hello.")])])
    for request_id in (1, 2, 3):
        router.send(Generate(request_id, with_image, [image], [], params))
    router.send(Generate(4, text_only, [], [], params))
    batching = _Batching(pipeline, worker, Budget(pipeline.get_tokenizer(), None))

    def serve() -> None:
        try:
            batching.run()
        except _Shutdown:
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    finished = set()
    while len(finished) < 4:
        assert router.poll(120), "the worker stopped answering"
        message = router.recv()
        assert not isinstance(message, Failed), message
        if isinstance(message, Finished):
            finished.add(message.id)
    router.send(None)
    thread.join(30)

    adds = [k for k, call in enumerate(pipeline.calls) if call.startswith("add")]
    assert pipeline.calls[adds[0]] == "add 4"  # the text request does not wait behind the encodes
    assert [pipeline.calls[k] for k in adds[1:]] == ["add 1", "add 2", "add 3"]
    assert all("step" in pipeline.calls[a:b] for a, b in zip(adds[1:], adds[2:])), pipeline.calls  # a step between two encodes
