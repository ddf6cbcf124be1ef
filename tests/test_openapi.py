"""`GET /openapi.json`: every route of the app, its bodies from the pydantic models, in OpenAPI 3.1's structure."""

import json
import re

import pytest
from aiohttp import web

from vlm_router.api.app import create_app
from vlm_router.api.openapi import documented

from .conftest import router_config

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(node: object) -> set[str]:
    """Every `$ref` under `node`."""
    text = json.dumps(node)
    return set(re.findall(r'"\$ref": "([^"]+)"', text))


@pytest.fixture
async def served(aiohttp_client, families):
    """The app with a reload endpoint and a route added late without `documented`; the client and its document."""
    app = create_app(router_config([]), families, load=lambda: router_config([]))

    async def extra(_: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_put("/v1/extra/{thing}", extra)
    client = await aiohttp_client(app)
    response = await client.get("/openapi.json")
    assert response.status == 200
    return app, await response.json()


async def test_every_route_is_in_the_document(served):
    app, doc = served
    routes = {(r.resource.canonical, r.method.lower()) for r in app.router.routes() if r.method != "HEAD"}
    documented_routes = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routes == documented_routes
    assert {"/v1/completions", "/v1/chat/completions", "/v1/admin/reload", "/openapi.json", "/metrics", "/ready"} <= set(doc["paths"])


async def test_the_structure_is_openapi_3_1(served):
    _, doc = served
    assert doc["openapi"].startswith("3.1.") and set(doc) <= {"openapi", "info", "paths", "components", "servers", "tags", "webhooks", "jsonSchemaDialect"}
    assert doc["info"]["title"] and doc["info"]["version"]
    for path, item in doc["paths"].items():
        assert path.startswith("/") and set(item) <= METHODS
        for operation in item.values():
            assert operation["responses"] and all(code == "default" or re.fullmatch(r"[1-5]\d\d", code) for code in operation["responses"])
            assert all("description" in answer for answer in operation["responses"].values())
            names = re.findall(r"\{(\w+)\}", path)
            assert [(p["name"], p["in"], p["required"]) for p in operation.get("parameters", [])] == [(n, "path", True) for n in names]
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "$defs" not in json.dumps(doc)


async def test_bodies_come_from_the_models(served):
    _, doc = served
    schemas = doc["components"]["schemas"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "messages" in schemas[body]["properties"] and "messages" in schemas[body]["required"]
    assert chat["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletionResponse"}
    assert chat["responses"]["default"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    completion = schemas["CompletionRequest"]["properties"]
    assert {"prompt", "max_tokens", "temperature", "stop", "stream_options"} <= set(completion)
    assert completion["temperature"]["anyOf"][0]["maximum"] == 2  # the chat request's own range
    assert schemas["CompletionResponse"]["properties"]["object"]["const"] == "text_completion"
    models = doc["paths"]["/v1/models/{model}"]["get"]
    assert models["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelCard"}


async def test_a_route_without_metadata_has_a_generic_answer(served):
    _, doc = served
    extra = doc["paths"]["/v1/extra/{thing}"]["put"]
    assert extra["summary"] == "PUT /v1/extra/{thing}" and extra["responses"]["200"] == {"description": "OK"} and "requestBody" not in extra


def test_documented_keeps_the_handler():
    async def handler(_: web.Request) -> web.Response:
        return web.Response()

    assert documented(summary="x")(handler) is handler


async def test_each_route_documents_its_own_error_shape(served):
    """OpenAI's error body everywhere but on Anthropic's Messages API, which answers in Anthropic's."""
    _, doc = served

    def error_schema(path: str) -> dict:
        (ref,) = refs(doc["paths"][path]["post"]["responses"]["default"])
        return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]

    assert set(error_schema("/v1/chat/completions")["properties"]) == {"error"}
    assert set(error_schema("/v1/messages")["properties"]) == {"type", "error"}
