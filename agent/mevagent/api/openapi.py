"""The OpenAPI 3.1 document of the control API, generated from `app.ROUTES` and its pydantic models.

Every route the router serves is in the table, so every route is in the document; request and answer
schemas are the models that validate them, so the document cannot drift from what the API accepts.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel

from mevagent import __version__
from mevagent.api.app import ROUTES, Route
from mevagent.api.models import ErrorResponse

_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{(\w+)\}")
_STATUS_TEXT = {
    400: "Bad payload: nothing changed",
    401: "Missing or wrong bearer token",
    404: "Unknown name",
    413: "Body too large",
    503: "Not ready",
}
# A mutation's 503: the state directory could not take it (a full disk).
_UNWRITTEN = "State not written (state_dir full or unwritable): GET /exposure/current shows what holds"


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=_REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _json_content(ref: dict[str, str]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "responses": {},
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        query_schema = route.query.model_json_schema()
        for name, prop in query_schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in query_schema.get("required", []), "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            parameters.append(param)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {"required": False, "content": _json_content(_schema(route.body, schemas))}
    if route.response is not None:
        op["responses"]["200"] = {"description": "OK", "content": _json_content(_schema(route.response, schemas))}
    elif route.path == "/metrics":
        op["responses"]["200"] = {
            "description": "Prometheus text format",
            "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
        }
    else:
        op["responses"]["200"] = {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}}
    errors = set(route.error_statuses)
    if route.mutating:
        errors |= {400, 401, 413, 503}
        op["security"] = [{"bearer": []}]
    for status in sorted(errors):
        not_ready = status == 503 and not route.mutating
        model = route.response if not_ready and route.response is not None else ErrorResponse
        op["responses"][str(status)] = {
            "description": _UNWRITTEN if status == 503 and route.mutating else _STATUS_TEXT[status],
            "content": _json_content(_schema(model, schemas)),
        }
    return op


@cache
def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mevagent control API",
            "version": __version__,
            "description": "Loopback by default. Every POST needs `Authorization: Bearer <token>` (the token file "
            "named by api.token_file). Bad payloads get 400 naming the field and change nothing.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
