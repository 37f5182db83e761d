"""The OpenAPI 3.1 document of each listener, generated from `api.ROUTES` and its pydantic models."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from mevcontrol.api import PATH_PATTERNS, ROUTES, Route
from mevcontrol.models import Error

_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{(\w+)\}")
_ERRORS = {
    400: "Bad body or query: nothing changed",
    401: "Missing or unknown token",
    403: "A viewer, or four-eyes: not the same operator",
    404: "Unknown id (or the transaction is not stuck)",
    409: "The approval is not pending (or the agent refused the replace/cancel)",
    413: "Body too large",
    429: "Rate limited",
    500: "Internal error",
}


def _ref(model: Any, schemas: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=_REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.handler.__name__, "summary": route.summary}
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string", "pattern": PATH_PATTERNS[n]}}
        for n in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        schema = route.query.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        for name, prop in schema["properties"].items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    if params:
        op["parameters"] = params
    if route.body is not None:
        # An absent body reads as {}: required when {} is not a valid one (a required field, minProperties).
        ref = _ref(route.body, schemas)
        body = schemas[route.body.__name__]
        required = bool(body.get("required")) or body.get("minProperties", 0) > 0
        op["requestBody"] = {"required": required, "content": {"application/json": {"schema": ref}}}
    content: dict[str, Any] = {"application/json": {"schema": {}}}
    if route.query is not None and "format" in route.query.model_fields:  # ?format=csv (the daily report)
        content["text/csv"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    if route.four_eyes:
        responses["202"] = {"description": "Awaiting a second operator's approval"}
    statuses = {401, 429, 500} if (route.method, route.path) != ("GET", "/health") else {429, 500}
    if route.path == "/health":
        responses["503"] = {"description": "The bus or the database does not answer"}
    if route.mutating:
        statuses |= {400, 403, 413}
    if route.query is not None:
        statuses.add(400)
    if "{id}" in route.path or "{tx}" in route.path:
        statuses |= {404, 409}
    if "{tx}" in route.path:  # a replace/cancel: the owning agent had not answered yet, or the bus is away
        responses["202"] = {"description": "Sent to the owning agent, which has not answered yet"}
    if "{tx}" in route.path or route.path == "/positions/{id}/unwind":
        responses["503"] = {"description": "The bus did not take the command"}
    for status in sorted(statuses):
        content = {"application/json": {"schema": _ref(Error, schemas)}}
        responses[str(status)] = {"description": _ERRORS[status], "content": content}
    op["responses"] = responses
    if route.path != "/health":
        op["security"] = [{"bearer": []}]
    return op


@cache
def document(listener: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        if route.listener == listener:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mevcontrol {listener} API",
            "version": "1",
            "description": "Every route needs `Authorization: Bearer <operator token>` except GET /health; "
            "POSTs need the operator role. Four-eyes actions answer 202 with an approval id.",
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
