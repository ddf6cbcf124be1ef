"""Lazy loading, one load for concurrent first requests, failures that stay with their model."""

import asyncio
import json

import openai
import pytest

from vlm_router.api.app import SERVICE, create_app
from vlm_router.api.models import ModelCard
from vlm_router.progress import Progress
from vlm_router.registry import ModelRegistry, ModelState

from .conftest import data_url, image_part, png_bytes, router_config, user

BUILT_IN = ("gemma3", "internvl_chat", "llava", "llava_next", "llava_next_video", "minicpmv", "phi3_v", "qwen2_vl", "qwen3_vl")


async def start(aiohttp_server, families, models, **sections):
    app = create_app(router_config(models, **sections), families)
    server = await aiohttp_server(app)
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0, timeout=300)
    return app, client


async def states(client) -> dict[str, dict]:
    return {m.id: m.model_dump() for m in (await client.models.list()).data}


async def ask(client, model, *parts, **kw):
    kw.setdefault("max_tokens", 4)
    return await client.chat.completions.create(model=model, messages=[user(*parts or ("hi",))], **kw)


async def watch(client, model: str, request: asyncio.Future) -> list[tuple[str, dict | None]]:
    """The model's `state` and `loading` as /v1/models shows them until `request` is done, each change once."""
    seen: list[tuple[str, dict | None]] = []
    while not request.done():
        card = (await states(client))[model]
        if not seen or seen[-1] != (card["state"], card["loading"]):
            seen.append((card["state"], card["loading"]))
        await asyncio.sleep(0.02)
    return seen


async def test_lazy_load_moves_from_not_loaded_to_ready(aiohttp_server, families, tiny_models):
    _, client = await start(aiohttp_server, families, [{"name": "m", "path": str(tiny_models["qwen2_vl"])}])
    assert (await states(client))["m"]["loading"] is None
    request = asyncio.ensure_future(ask(client, "m"))
    seen = await watch(client, "m", request)
    assert (await request).choices[0].message.content
    assert ("loading", {"phase": "compiling", "progress": None}) in seen, "the server answers /v1/models while the worker compiles the model"
    assert {state for state, _ in seen} <= {"not_loaded", "loading", "ready"}
    assert all(loading is None for state, loading in seen if state != "loading")
    assert (await states(client))["m"]["state"] == "ready"


def test_a_downloads_share_shows_in_the_model_card(families):
    handle = ModelRegistry(router_config([{"name": "m", "source": "OpenVINO/m-ov"}]), families).handles[0]
    handle.state, handle.progress = ModelState.LOADING, Progress("m")
    handle.progress.begin("downloading", total=2000, done=200)
    handle.progress.advance(901)
    assert ModelCard.of(handle).model_dump(mode="json")["loading"] == {"phase": "downloading", "progress": 0.451}
    handle.progress.begin("compiling")
    assert ModelCard.of(handle).model_dump(mode="json")["loading"] == {"phase": "compiling", "progress": None}
    handle.state = ModelState.READY
    assert ModelCard.of(handle).loading is None


async def test_ten_concurrent_first_requests_cause_one_load(aiohttp_server, families, tiny_models):
    app, client = await start(aiohttp_server, families, [{"name": "m", "path": str(tiny_models["qwen2_vl"])}])
    image = image_part(data_url(png_bytes()))
    answers = await asyncio.gather(*(ask(client, "m", image, "Describe.") for _ in range(10)))
    assert all(a.choices[0].message.content for a in answers)
    assert app[SERVICE].registry.get("m").load_count == 1


async def test_broken_model_fails_alone(aiohttp_server, families, tiny_models, tmp_path):
    (tmp_path / "empty").mkdir()
    app, client = await start(
        aiohttp_server,
        families,
        [
            {"name": "broken", "path": str(tmp_path / "empty")},
            {"name": "no-plugin", "family": "not_a_family", "source": "org/unavailable"},
            {"name": "good", "path": str(tiny_models["qwen2_vl"])},
        ],
    )
    before = await states(client)
    assert before["broken"]["state"] == "not_loaded"
    assert before["no-plugin"]["state"] == "failed", "a missing family is known at start-up"
    assert "family 'not_a_family' is not installed; installed: " in before["no-plugin"]["error"]
    assert all(family in before["no-plugin"]["error"] for family in BUILT_IN)
    for name, reason in (("broken", "not an OpenVINO model folder"), ("no-plugin", "family 'not_a_family' is not installed")):
        with pytest.raises(openai.APIStatusError) as caught:
            await ask(client, name)
        assert caught.value.status_code == 503
        assert reason in caught.value.body["message"]
        assert int(caught.value.response.headers["Retry-After"]) >= 1
        listed = (await states(client))[name]
        assert listed["state"] == "failed" and reason in listed["error"]
    assert (await ask(client, "good")).choices[0].message.content
    with pytest.raises(openai.APIStatusError) as again:
        await ask(client, "broken")
    assert again.value.status_code == 503
    assert app[SERVICE].registry.get("broken").load_count == 1, "no new load before load_retry_s has passed"


async def test_folders_no_family_serves_fail_with_the_reason(aiohttp_server, families, tmp_path):
    """A model_type no family claims lists the installed families; a family may refuse a checkpoint it cannot prompt."""
    for name, config in (("mllama", {"model_type": "mllama", "architectures": ["MllamaForConditionalGeneration"]}), ("internvl", {"model_type": "internvl_chat", "template": "vicuna_v1.1"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        (tmp_path / name / "openvino_language_model.xml").write_text("<net/>")
    _, client = await start(aiohttp_server, families, [{"name": n, "path": str(tmp_path / n)} for n in ("mllama", "internvl")])
    reasons = {
        "mllama": "no installed family serves model_type 'mllama' or architectures ['MllamaForConditionalGeneration']; installed families: ",
        "internvl": "family 'internvl_chat' cannot serve",
    }
    for name, reason in reasons.items():
        with pytest.raises(openai.APIStatusError) as caught:
            await ask(client, name)
        assert caught.value.status_code == 503
        assert reason in caught.value.body["message"]
    listed = (await states(client))["mllama"]["error"]
    assert all(f"{family} (" in listed for family in BUILT_IN), listed
    assert "conversation template 'vicuna_v1.1' is not supported" in (await states(client))["internvl"]["error"]


async def test_failed_model_is_retried_after_the_wait(aiohttp_server, families, tiny_models, tmp_path):
    folder = tmp_path / "later"
    folder.mkdir()
    app, client = await start(aiohttp_server, families, [{"name": "m", "path": str(folder)}], server={"load_retry_s": 0})
    with pytest.raises(openai.APIStatusError):
        await ask(client, "m")
    for item in tiny_models["qwen2_vl"].iterdir():
        (folder / item.name).symlink_to(item)
    assert (await ask(client, "m")).choices[0].message.content
    assert app[SERVICE].registry.get("m").load_count == 2


async def test_source_entry_is_converted_on_first_use(aiohttp_server, families, tiny_models, tmp_path):
    source = str(tiny_models["qwen2_vl_hf"])
    _, client = await start(
        aiohttp_server,
        families,
        [{"name": "converted", "source": source, "weight_format": "int8"}],
        server={"cache_dir": str(tmp_path / "cache")},
    )
    assert (await states(client))["converted"]["family"] == "qwen2_vl", "family read from the source folder"
    request = asyncio.ensure_future(ask(client, "converted", image_part(data_url(png_bytes())), "Describe."))
    phases = [loading["phase"] for state, loading in await watch(client, "converted", request) if state == "loading" and loading["phase"]]
    assert (await request).choices[0].message.content
    assert list(dict.fromkeys(phases)) == ["converting", "compiling"]
    converted = list((tmp_path / "cache").glob("*/int8/openvino_language_model.xml"))
    assert len(converted) == 1
    assert not list((tmp_path / "cache").glob("*/*.partial"))


async def test_eager_model_loads_at_start(aiohttp_server, families, tiny_models):
    app, client = await start(aiohttp_server, families, [{"name": "m", "path": str(tiny_models["qwen2_vl"]), "load": "eager"}])
    for _ in range(300):
        if (await states(client))["m"]["state"] == "ready":
            break
        await asyncio.sleep(0.05)
    assert (await states(client))["m"]["state"] == "ready"
    assert app[SERVICE].registry.get("m").load_count == 1


async def test_capability_override_refuses_images(aiohttp_server, families, tiny_models):
    app, client = await start(
        aiohttp_server,
        families,
        [
            {"name": "text-only", "path": str(tiny_models["qwen2_vl"]), "capabilities": {"images": False}},
            {"name": "one-image", "path": str(tiny_models["qwen2_vl"]), "capabilities": {"max_images": 1}},
        ],
    )
    image = image_part(data_url(png_bytes()))
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(client, "text-only", image)
    assert "does not accept images" in caught.value.body["message"]
    assert caught.value.body["code"] == "capability_images"
    assert (await ask(client, "one-image", image)).choices[0].message.content
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(client, "one-image", image, image)
    assert "at most 1 image" in caught.value.body["message"]
    assert app[SERVICE].registry.get("text-only").load_count == 0, "refused before loading the model"


async def test_a_second_load_uses_the_compiled_model_cache(aiohttp_server, families, tiny_models, tmp_path):
    """OpenVINO writes compiled blobs on the first load and reads them on the next."""
    models = [{"name": "org/m", "path": str(tiny_models["qwen2_vl"])}]
    server = {"cache_dir": str(tmp_path), "compile_cache": True}
    _, first = await start(aiohttp_server, families, models, server=server)
    assert (await ask(first, "org/m")).choices[0].message.content
    compiled = tmp_path / "compiled" / "org--m"
    written = {p: p.stat().st_mtime_ns for p in compiled.rglob("*") if p.is_file()}
    assert written, "the first load filled the cache"
    _, second = await start(aiohttp_server, families, models, server=server)
    assert (await ask(second, "org/m")).choices[0].message.content
    again = {p: p.stat().st_mtime_ns for p in compiled.rglob("*") if p.is_file()}
    assert set(again) == set(written), "no new blobs: the models were found in the cache"
    assert sum(again[p] == t for p, t in written.items()) >= len(written) - 1  # one part is rewritten on each load
    off = [{**models[0], "name": "off", "ov_config": {"CACHE_DIR": ""}}, {**models[0], "name": "cpu-auto"}]
    _, third = await start(aiohttp_server, families, off, server=server)
    _, auto = await start(aiohttp_server, families, off[1:], server={"cache_dir": str(tmp_path)})
    assert (await ask(third, "off")).choices[0].message.content and (await ask(auto, "cpu-auto")).choices[0].message.content
    assert {p.name for p in (tmp_path / "compiled").iterdir()} == {"org--m"}, "off for the model; auto is off on CPU"
