"""OpenAPI descriptions for the routes that read their raw body themselves.

Signed routes (webhooks, agency events) must verify the exact bytes before parsing, so they
take `Request`, not a FastAPI body parameter, and FastAPI cannot see their body or headers.
`documented` writes both into the schema, so the OpenAPI document says what a sender must
send and the fuzz suite (tests/test_fuzz.py) generates meaningful requests from it.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter


def inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its local `$defs` references replaced by the definitions (the
    OpenAPI document has no `$defs` section for them to point into)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.rsplit("/", 1)[1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def documented(body: Any, headers: dict[str, str], *, errors: dict[int, str]) -> dict[str, Any]:
    """`openapi_extra` for a route: a JSON request body of type `body`, the named request
    headers (all strings, described by the values) and the error answers it gives."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": inline(TypeAdapter(body).json_schema())}}},
        "parameters": [{"name": name, "in": "header", "required": False,
                        "description": text, "schema": {"type": "string"}}
                       for name, text in headers.items()],
        "responses": {str(code): {"description": text} for code, text in errors.items()},
    }
