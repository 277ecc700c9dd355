"""docs/api.md from the account API's OpenAPI document, so that the two never disagree:
`python -m dockyard.api.openapi_markdown > docs/api.md` (a test fails when they drift)."""

from __future__ import annotations

import json
import sys
from typing import Any

from dockyard.api.routes.openapi import DOCUMENT

METHODS = ("get", "post", "put", "patch", "delete")


def render(doc: dict[str, Any]) -> str:
    info = doc["info"]
    lines = [
        f"# {info['title']} (version {info['version']})",
        "",
        "<!-- Generated from src/dockyard/api/openapi.json by "
        "`python -m dockyard.api.openapi_markdown > docs/api.md`; edit the JSON, not this. -->",
        "",
        info["description"],
        "",
        "| call | what it does |",
        "|---|---|",
    ]
    operations = [
        (path, method, item[method])
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    ]
    for path, method, op in operations:
        lines.append(
            f"| [`{method.upper()} {path}`](#{op['operationId'].lower()}) | {op['summary']} |"
        )
    for path, method, op in operations:
        lines += [
            "",
            f'<a id="{op["operationId"].lower()}"></a>',
            f"## `{method.upper()} {path}`",
            "",
            f"**{op['summary']}.**",
        ]
        if op.get("description"):
            lines += ["", op["description"]]
        lines += ["", f"Credentials: {_security(op.get('security', doc['security']))}."]
        lines += _parameters(op.get("parameters", []))
        if "requestBody" in op:
            lines += _body(doc, op["requestBody"])
        lines += _responses(doc, op["responses"])
    return "\n".join(lines) + "\n"


def _security(requirements: list[dict[str, Any]]) -> str:
    names = {
        "password": "the account's password (HTTP Basic)",
        "bearer": "any credential (password, access token or bearer token)",
    }
    if not requirements:
        return "none"
    if any("bearer" in r for r in requirements):
        return names["bearer"]
    return names["password"]


def _parameters(params: list[dict[str, Any]]) -> list[str]:
    if not params:
        return []
    lines = ["", "| parameter | in | required | meaning |", "|---|---|---|---|"]
    for p in params:
        meaning = p.get("description", "")
        if "enum" in p["schema"]:
            meaning = (
                (meaning + " " if meaning else "")
                + "One of "
                + ", ".join(f"`{v}`" for v in p["schema"]["enum"])
                + "."
            )
        if "example" in p:
            meaning += f" Example: `{p['example']}`."
        lines.append(
            f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
            f"| {meaning.strip()} |"
        )
    return lines


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(doc, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = _resolve(doc, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    return schema


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join("`null`" if v is None else f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return "array"
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


def _fields(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    schema = _resolve(doc, schema)
    properties = schema.get("properties", {})
    if not properties:
        return []
    required = set(schema.get("required", []))
    lines = ["", "| field | type | required | meaning |", "|---|---|---|---|"]
    for name, prop in properties.items():
        prop = _resolve(doc, prop)
        meaning = prop.get("description", "")
        if "default" in prop:
            default = f"default `{json.dumps(prop['default'])}`"
            meaning = f"{meaning}; {default}" if meaning else default
        lines.append(
            f"| `{name}` | {_type(prop)} | {'yes' if name in required else 'no'} | {meaning} |"
        )
    return lines


def _example(value: Any) -> list[str]:
    return ["", "```json", json.dumps(value, indent=2, ensure_ascii=False), "```"]


def _body(doc: dict[str, Any], body: dict[str, Any]) -> list[str]:
    media = body["content"]["application/json"]
    lines = ["", "### Request body", "", body.get("description", "")]
    lines += _fields(doc, media["schema"])
    lines += ["", "Example:", *_example(media["example"])]
    return lines


def _responses(doc: dict[str, Any], responses: dict[str, Any]) -> list[str]:
    lines = ["", "### Responses", "", "| status | when | example |", "|---|---|---|"]
    success: list[str] = []
    for status, response in sorted(responses.items()):
        media = response.get("content", {}).get("application/json", {})
        example = ""
        if status.startswith("2"):
            if "example" in media:
                success += ["", f"`{status}` body:"]
                success += _fields(doc, media["schema"])
                success += ["", "Example:", *_example(media["example"])]
        elif "example" in media:
            error = media["example"]["errors"][0]
            example = f"`{error['code']}`: {error['message']}"
        lines.append(f"| {status} | {response['description']} | {example} |")
    return lines + success


def main() -> None:
    sys.stdout.write(render(json.loads(DOCUMENT.read_text())))


if __name__ == "__main__":
    main()
