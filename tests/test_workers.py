"""Worker processes: batching, disconnects, backpressure, unloading and faults, on tiny models."""

import asyncio
import json
import os
import signal

import aiohttp
import openai
import pytest

from .conftest import ENDLESS, Server, data_url, image_part, open_stream, png_bytes, user, wait_for


async def read_events(response) -> list[str]:
    events = []
    async for line in response.content:
        if line.startswith(b"data: "):
            events.append(line.decode()[6:].strip())
    return events


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_concurrent_streams_complete_with_correct_text(start):
    server = await start([{"name": "m", "scheduler": {"max_num_seqs": 4}}])
    image = image_part(data_url(png_bytes()))
    prompts = [(f"Question number {i}.",) if i % 2 else (image, f"Picture question {i}.") for i in range(6)]
    expected = [(await server.ask("m", *p, max_tokens=24)).choices[0].message.content for p in prompts]

    async def streamed(parts) -> str:
        stream = await server.client.chat.completions.create(
            model="m", messages=[user(*parts)], max_tokens=24, temperature=0, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert await asyncio.gather(*(streamed(p) for p in prompts)) == expected
    assert (await server.models())["m"]["engine"] == "continuous_batching"


async def test_disconnect_stops_generation_and_frees_the_slot(start):
    # One sequence at a time: if the abandoned request kept generating, the next could not start
    # before its deadline.
    server = await start([{"name": "m", "scheduler": {"max_num_seqs": 1}, "request_timeout_s": 60}])
    async with aiohttp.ClientSession() as session:
        response = await open_stream(session, server, "m")
        response.close()
    await wait_for(lambda: _idle(server, "m"))
    answer = await server.ask("m", max_tokens=4)
    assert answer.usage.completion_tokens == 4


async def _idle(server: Server, model: str) -> bool:
    return server.registry.get(model).in_flight == 0


async def test_full_queue_answers_429(start):
    server = await start([{"name": "m", "scheduler": {"continuous_batching": False}, "max_waiting": 0}])
    async with aiohttp.ClientSession() as session:
        running = await open_stream(session, server, "m")
        with pytest.raises(openai.RateLimitError) as caught:
            await server.ask("m")
        assert caught.value.response.headers["Retry-After"] == "1"
        assert caught.value.body["code"] == "model_overloaded"
        assert (await server.models())["m"]["engine"] == "sequential"
        running.close()
    await wait_for(lambda: _idle(server, "m"))
    assert (await server.ask("m")).choices[0].message.content


async def test_least_recently_used_idle_model_is_unloaded(start):
    server = await start([{"name": "a"}, {"name": "b"}, {"name": "c"}], server={"max_loaded_models": 2})
    await server.ask("a")
    await server.ask("b")
    pid_a = (await server.models())["a"]["pid"]
    await server.ask("c")
    states = await server.models()
    assert {n: states[n]["state"] for n in "abc"} == {"a": "not_loaded", "b": "ready", "c": "ready"}
    assert not alive(pid_a), "the unloaded model's worker is gone and its memory with it"
    await server.ask("a")
    states = await server.models()
    assert {n: states[n]["state"] for n in "abc"} == {"a": "ready", "b": "not_loaded", "c": "ready"}


async def test_busy_models_are_not_unloaded(start):
    server = await start([{"name": "a"}, {"name": "b"}], server={"max_loaded_models": 1})
    async with aiohttp.ClientSession() as session:
        busy = await open_stream(session, server, "a")
        with pytest.raises(openai.APIStatusError) as caught:
            await server.ask("b")
        assert caught.value.status_code == 503 and "busy" in caught.value.body["message"]
        busy.close()
    await wait_for(lambda: _idle(server, "a"))
    assert (await server.ask("b")).choices[0].message.content
    assert (await server.models())["a"]["state"] == "not_loaded"


async def test_memory_budget_unloads_to_fit(start, tiny_models):
    weights_gb = sum(p.stat().st_size for p in tiny_models["qwen2_vl"].glob("*.bin")) / 1e9
    server = await start([{"name": "a"}, {"name": "b"}], server={"memory_budget_gb": weights_gb * 1.5})
    await server.ask("a")
    await server.ask("b")
    states = await server.models()
    assert (states["a"]["state"], states["b"]["state"]) == ("not_loaded", "ready")
    assert states["b"]["memory_gb"] == pytest.approx(weights_gb, abs=0.001)


async def test_keep_alive_unloads_an_idle_model(start):
    server = await start([{"name": "m", "keep_alive_s": 0.5}])
    await server.ask("m")
    pid = (await server.models())["m"]["pid"]

    async def unloaded() -> bool:
        return (await server.models())["m"]["state"] == "not_loaded"

    async def gone() -> bool:
        return not alive(pid)

    await wait_for(unloaded)
    await wait_for(gone)
    assert (await server.ask("m")).choices[0].message.content, "the next request loads it again"


async def test_killed_worker_fails_its_requests_and_restarts(start, tiny_models):
    server = await start([{"name": "m"}, {"name": "other", "path": str(tiny_models["qwen2_5_vl"])}])
    await server.ask("other")
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, server, "m")
        pending = asyncio.ensure_future(server.ask("m", max_tokens=ENDLESS))
        await wait_for(lambda: _in_flight(server, "m", 2))
        pid = (await server.models())["m"]["pid"]
        os.kill(pid, signal.SIGKILL)
        events = await asyncio.wait_for(read_events(stream), 60)
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "worker_failed"
        with pytest.raises(openai.APIStatusError) as caught:
            await asyncio.wait_for(pending, 60)
        assert caught.value.status_code == 503
    assert (await server.ask("other")).choices[0].message.content, "another model kept serving"
    assert (await server.ask("m")).choices[0].message.content, "the next request starts a new worker"
    states = await server.models()
    assert states["m"]["restarts"] == 1 and states["m"]["pid"] != pid and states["m"]["state"] == "ready"


async def _in_flight(server: Server, model: str, count: int) -> bool:
    return server.registry.get(model).in_flight == count


async def test_health_answers_while_the_worker_is_busy(start):
    server = await start([{"name": "m"}])
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, server, "m")
        for _ in range(5):
            async with session.get(server.url + "/health") as health:
                assert health.status == 200
        lines = [await stream.content.readline() for _ in range(2)]  # an event and its blank line
        assert any(line.startswith(b"data: {") for line in lines), "the generation is still running"
        stream.close()


async def test_deadline_ends_a_long_request(start):
    server = await start([{"name": "m", "request_timeout_s": 1}])
    with pytest.raises(openai.APIStatusError) as caught:
        await server.ask("m", max_tokens=ENDLESS)
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "deadline_exceeded"
    await wait_for(lambda: _idle(server, "m"))
    assert (await server.ask("m")).choices[0].message.content


def test_detokenizer_streams_text_as_one_decode_would(tiny_models):
    """Token by token, characters split over several tokens come out whole, and stray bytes never raise."""
    import openvino_genai

    from vlm_router.worker.detokenizer import Detokenizer

    tokenizer = openvino_genai.Tokenizer(str(tiny_models["qwen2_vl"]))
    text = "héllo wörld ✓ 日本語 done"
    ids = [int(i) for i in tokenizer.encode(text).input_ids.data[0]]
    detokenizer = Detokenizer(tokenizer)
    pieces = [detokenizer.add([token]) for token in ids] + [detokenizer.end()]
    assert "".join(pieces) == tokenizer.decode(ids) == text
    stray = [ids[0], 255, 254]  # tokens whose bytes are no valid UTF-8 on their own
    detokenizer = Detokenizer(tokenizer)
    assert detokenizer.add(stray) + detokenizer.end() == tokenizer.decode(stray)
