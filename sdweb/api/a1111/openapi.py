"""/openapi.json that tells the truth about errors on every route, also routes extensions add later.

The app's error handlers give every route the same error bodies (A1111's `{error, detail, body, errors}`,
FastAPI's validation 422), so each operation documents them: routes an extension adds with a bare
`app.add_api_route` are described as correctly as ours, and schema-driven clients and checks agree.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from sdweb.api.a1111.schemas_info import ErrorResponse, ValidationErrorResponse

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "A request the user can fix (bad image, malformed body, unknown name, ...)",
    "401": "Missing or wrong credentials (--api-auth)",
    "404": "A named model, sampler, script, job or image does not exist",
    "422": "The request does not fit the schema, or a setting or script is invalid",
    "500": "A fault in sdweb (logged with a traceback)",
}


def _error_content(status: str) -> dict[str, Any]:
    error = {"$ref": REF.format(model="ErrorResponse")}
    if status == "422":
        schema: dict[str, Any] = {"anyOf": [{"$ref": REF.format(model="ValidationErrorResponse")}, error]}
    else:
        schema = error
    return {"application/json": {"schema": schema}}


def with_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error responses to every operation (keeping any an operation documents itself,
    except a 422 limited to FastAPI's validation shape, which is widened to both shapes)."""
    _, definitions = models_json_schema([(ErrorResponse, "serialization"), (ValidationErrorResponse, "serialization")],
                                        ref_template=REF)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in definitions.get("$defs", {}).items():
        components.setdefault(name, definition)
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, description in ERRORS.items():
                current = responses.get(status)
                only_validation = current is not None and "HTTPValidationError" in str(current.get("content", ""))
                if current is None or only_validation:
                    responses[status] = {"description": description, "content": _error_content(status)}
    return schema


def install_openapi(app: FastAPI) -> None:
    """Build the schema lazily (after extensions added their routes), once, with the error responses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = with_error_responses(schema)
        return app.openapi_schema

    app.openapi = openapi  # FastAPI's documented way to customise the schema
