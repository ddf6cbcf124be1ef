"""`GET /openapi.json`: an OpenAPI 3.1 document of every route, its bodies from the pydantic models."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from .responses import ErrorResponse

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class Documented:
    """What the document says of a route: its request body, its answer, a one-line summary and its error body."""

    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    summary: str = ""
    error: type[BaseModel] = ErrorResponse


#: The attribute `documented` sets on a handler.
ATTRIBUTE = "__openapi__"


def documented(
    request: type[BaseModel] | None = None, response: type[BaseModel] | None = None, summary: str = "", error: type[BaseModel] = ErrorResponse
) -> Callable[[F], F]:
    """Records a handler's request body, answer, summary and error body (OpenAI's unless given) for `/openapi.json`;
    the handler is returned unchanged."""

    def mark(handler: F) -> F:
        setattr(handler, ATTRIBUTE, Documented(request, response, summary, error))
        return handler

    return mark


PATH = "/openapi.json"
_REF = "#/components/schemas/{model}"
_PARAMETER = re.compile(r"\{(\w+)\}")


def _json_body(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route `app` has now; a route without `documented` gets a generic answer."""
    routes = [(route, getattr(route.handler, ATTRIBUTE, Documented())) for route in app.router.routes() if route.method != "HEAD"]
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(doc.error, "serialization") for _, doc in routes}
    for _, doc in routes:
        models |= {(doc.request, "validation")} if doc.request else set()
        models |= {(doc.response, "serialization")} if doc.response else set()
    refs, schemas = models_json_schema(sorted(models, key=lambda m: (m[0].__name__, m[1])), ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for route, doc in routes:
        if route.resource is None:
            continue
        path = route.resource.canonical
        operation: dict[str, Any] = {
            "summary": doc.summary or f"{route.method} {path}",
            "responses": {
                "200": _json_body(refs[doc.response, "serialization"], "OK") if doc.response else {"description": "OK"},
                "default": _json_body(refs[doc.error, "serialization"], "An error."),
            },
        }
        if names := _PARAMETER.findall(path):
            operation["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]
        if doc.request:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[doc.request, "validation"]}}}
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "vlm-router", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }


@documented(summary="This document: every route of the server, in OpenAPI 3.1.")
async def serve(request: web.Request) -> web.Response:
    """`GET /openapi.json`."""
    return web.json_response(document(request.app))
