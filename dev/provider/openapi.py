"""The providers' own API descriptions as the stand-in's request gate.

Every API request is matched to an operation of `dyte-openapi-v2.yaml` (RealtimeKit paths are the
same sub-paths under another prefix) and its path, query and JSON body are validated against that
operation's schemas, so a client that passes here sends what the real API documents. The document
is OpenAPI 3.0: its schema dialect is JSON Schema draft 4 plus `nullable`, which is translated once
at load. RealtimeKit's documented differences are applied to a copy for that mode, and every
operation Cloudflare's own subset (`realtimekit-openapi-subset.json`) describes takes its request
body, query and answer schemas from there instead: where the two differ, Cloudflare's is the truth.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match

from dev.provider.model import ApiError

# Dyte's own document and Cloudflare's RealtimeKit subset, vendored (Apache-2.0, see NOTICE) so a clone
# is self-contained.
DOCUMENT = Path(__file__).resolve().parent / "dyte-openapi-v2.yaml"
SUBSET = Path(__file__).resolve().parent / "realtimekit-openapi-subset.json"
SUBSET_PREFIX = "/accounts/{account_id}/realtime/kit/{app_id}"

METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Operation:
    operation_id: str
    path_params: tuple[tuple[str, Any], ...]
    query_params: tuple[tuple[str, Any], ...]
    body: Any  # a compiled validator, or None when the operation takes no JSON body
    body_schema: Mapping[str, Any] | None
    responses: Mapping[str, Any]  # status -> validator of its JSON answer, for checking the stand-in itself
    # Success status -> the schema of its answer, where the stand-in can trim an answer to what it requires.
    answer_schemas: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    operations: Mapping[str, Operation]


class Gate:
    """The routes and validators of one mode, compiled once; `overrides` replace a documented operation's
    body, query and answer checks, by (METHOD, path template with its parameters written `{}`)."""

    def __init__(self, document: Mapping[str, Any], overrides: Mapping[tuple[str, str], Operation] | None = None):
        self._document = document
        self._overrides = overrides or {}
        self._overridden: set[tuple[str, str]] = set()
        routes = [self._route(template, item) for template, item in document["paths"].items()]
        unmatched = set(self._overrides) - self._overridden
        if unmatched:
            raise ValueError(f"operations without a documented route: {sorted(unmatched)}")
        # A literal segment must win over a parameter (`/recordings/active-recording/{id}`).
        routes.sort(key=lambda route: -route[0])
        self._routes = [route for _, route in routes]

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The documented operation of a mode-relative path and its path parameters, or `ApiError` 404."""
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match and method.lower() in route.operations:
                return route.operations[method.lower()], dict(zip(route.names, match.groups(), strict=True))
        raise ApiError(404, f"No route for {method} {path}")

    def check(self, method: str, path: str, query: Mapping[str, list[str]], raw_body: bytes, strict: bool):
        """The operation, path parameters and parsed body of a request, or `ApiError` 400/404."""
        operation, params = self.find(method, path)
        self._check_params(operation, params, query)
        return operation, params, self._check_body(operation, raw_body, strict)

    def _route(self, template: str, item: Mapping[str, Any]) -> tuple[int, _Route]:
        names, parts, literals = [], [], 0
        for segment in template.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                names.append(segment[1:-1])
                parts.append("([^/]+)")
            else:
                literals += 1
                parts.append(re.escape(segment))
        operations = {method: self._operation(item, item[method]) for method in METHODS if method in item}
        for method, operation in operations.items():
            key = (method.upper(), _shape(template))
            override = self._overrides.get(key)
            if override is not None:
                self._overridden.add(key)
                operations[method] = replace(
                    override,
                    operation_id=operation.operation_id,
                    path_params=operation.path_params,
                    responses={**operation.responses, **override.responses},
                )
        pattern = re.compile("/" + "/".join(parts))
        return literals, _Route(pattern, tuple(names), operations)

    def _operation(self, item: Mapping[str, Any], spec: Mapping[str, Any]) -> Operation:
        params: dict[tuple[str, str], Mapping[str, Any]] = {}
        for param in [*item.get("parameters", ()), *spec.get("parameters", ())]:
            param = self._deref(param)
            params[(param["in"], param["name"])] = param
        path_params = tuple(
            (name, _validator(self._document, p.get("schema", {})))
            for (where, name), p in params.items()
            if where == "path"
        )
        query_params = tuple(
            (name, (p.get("schema", {}), _validator(self._document, p.get("schema", {}))))
            for (where, name), p in params.items()
            if where == "query"
        )
        body, body_schema = None, None
        if "requestBody" in spec:
            media = self._deref(spec["requestBody"]).get("content", {}).get("application/json")
            if media and "schema" in media:
                body_schema = media["schema"]
                body = _validator(self._document, body_schema)
        responses = {
            status: _validator(self._document, media["schema"])
            for status, response in spec.get("responses", {}).items()
            if (media := self._deref(response).get("content", {}).get("application/json")) and "schema" in media
        }
        return Operation(spec.get("operationId", ""), path_params, query_params, body, body_schema, responses)

    def _deref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            node = _pointer(self._document, node["$ref"])
        return node

    def _check_params(self, operation: Operation, params: Mapping[str, str], query: Mapping[str, list[str]]):
        for name, validator in operation.path_params:
            _raise_first(validator.iter_errors(params[name]), name)
        for name, (schema, validator) in operation.query_params:
            values = query.get(name)
            if not values or values[-1] == "":
                continue
            _raise_first(validator.iter_errors(_coerce(schema, values[-1])), name)

    def _check_body(self, operation: Operation, raw_body: bytes, strict: bool) -> Any:
        if operation.body is None:
            return None
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            raise ApiError(400, "BAD_REQUEST: the request body is not valid JSON") from None
        _raise_first(operation.body.iter_errors(body), "value")
        if strict:
            extra = next(self._undeclared(operation.body_schema, body, ""), None)
            if extra:
                raise ApiError(400, f'BAD_REQUEST: "{extra}" is not allowed')
        return body

    def _undeclared(self, schema: Mapping[str, Any], value: Any, where: str) -> Iterator[str]:
        """Fields the schema does not declare (for `reject_unknown_fields`, as Joi rejects them)."""
        schema = self._deref(schema)
        if isinstance(value, dict) and "properties" in schema and "additionalProperties" not in schema:
            for key, item in value.items():
                name = f"{where}.{key}" if where else key
                if key not in schema["properties"]:
                    yield name
                else:
                    yield from self._undeclared(schema["properties"][key], item, name)
        elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                yield from self._undeclared(schema["items"], item, f"{where}[{index}]")


def _coerce(schema: Mapping[str, Any], value: str) -> Any:
    """A query string value as the type its schema names, left as text when it does not parse."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    try:
        if kind == "number":
            return float(value)
        if kind == "integer":
            return int(value)
    except ValueError:
        return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind == "array":
        return value.split(",")
    return value


def _raise_first(errors: Iterator[ValidationError], root: str) -> None:
    error = best_match(errors)
    if error is not None:
        raise ApiError(400, f"BAD_REQUEST: {_describe(error, root)}")


def _describe(error: ValidationError, root: str) -> str:
    """A Joi-like message, the style of Dyte's own (`"name" is required`)."""
    path = ".".join(str(part) for part in error.absolute_path)
    where = path or root
    match error.validator:
        case "required":
            missing = next(name for name in error.validator_value if name not in error.instance)
            return f'"{f"{path}.{missing}" if path else missing}" is required'
        case "type":
            kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            return f'"{where}" must be of type {" or ".join(kinds)}'
        case "enum":
            return f'"{where}" must be one of {json.dumps(error.validator_value)}'
        case "format":
            return f'"{where}" must be a valid {"GUID" if error.validator_value == "uuid" else error.validator_value}'
        case "x-forbidden":
            return error.message
        case _:
            return f'"{where}" {error.message}'


def _pointer(document: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, got {ref!r}")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _validator(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Any:
    # Every reference in the document is `#/components/...`: carrying the components in the root lets
    # them resolve as written (draft 4 ignores the siblings of a `$ref`).
    return _Validator({**schema, "components": document["components"]}, format_checker=_FORMATS)


def _forbidden(validator: Any, names: list[str], instance: Any, schema: Any) -> Iterator[ValidationError]:
    """`x-forbidden`: fields RealtimeKit dropped from a Dyte schema that otherwise allows extra fields."""
    if validator.is_type(instance, "object"):
        for name in names:
            if name in instance:
                yield ValidationError(f'"{name}" is not allowed')


_Validator = validators.extend(Draft4Validator, {"x-forbidden": _forbidden})
_SubsetValidator = validators.extend(Draft202012Validator, {"x-forbidden": _forbidden})
# Only the formats the operations use, checked without the optional packages jsonschema would want.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path))


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema draft 4 (YAML keys as text, `nullable` as a type)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {str(key): _json_schema(value) for key, value in node.items()}
    if out.get("nullable") is True:
        del out["nullable"]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _realtimekit(document: dict[str, Any]) -> dict[str, Any]:
    """RealtimeKit's documented differences from Dyte v2 (reference section 4.4)."""
    document = copy.deepcopy(document)
    bodies = document["components"]["requestBodies"]
    schemas = document["components"]["schemas"]
    rtk_fields = {"session_keep_alive_time_in_secs": {"type": "number"}, "transcribe_on_end": {"type": "boolean"}}
    for name in ("CreateMeetingBody", "UpdateMeetingBody"):
        schema = bodies[name]["content"]["application/json"]["schema"]
        del schema["properties"]["preferred_region"]
        schema["properties"].update(copy.deepcopy(rtk_fields))
        schema["x-forbidden"] = ["preferred_region"]
    update = bodies["UpdateMeetingBody"]["content"]["application/json"]["schema"]
    update["properties"]["recording_config"] = {"$ref": "#/components/schemas/RecordingConfig"}
    recording = schemas["RecordingConfig"]
    recording["properties"]["realtimekit_bucket_config"] = recording["properties"].pop("dyte_bucket_config")
    recording["x-forbidden"] = ["dyte_bucket_config"]
    schemas["VideoConfig"]["properties"]["codec"]["enum"].append("VP9")
    return document


def _shape(template: str) -> str:
    """A path template with its parameter names dropped, so that two documents' templates compare."""
    return re.sub(r"\{[^}]*\}", "{}", template)


# The subset's envelope note: errors as Dyte's envelope, a 401 as a bare message.
_SUBSET_ERROR = {
    "type": "object",
    "properties": {
        "success": {"enum": [False]},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "number"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        },
    },
    "required": ["success", "error"],
}
# RealtimeKit routes media itself: its meetings have no `preferred_region` (reference section 4.4), and the
# subset's schemas, which allow undeclared fields, would otherwise let a Dyte habit through unnoticed.
_WITHOUT_REGION = ("create_meeting", "update_meeting")
_SUBSET_UNAUTHORIZED = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}


def subset_operations(subset: Path = SUBSET) -> dict[tuple[str, str], Operation]:
    """Cloudflare's RealtimeKit operations as gate overrides, keyed as `Gate` wants them."""
    document = json.loads(subset.read_text(encoding="utf-8"))
    operations = {}
    for key, spec in document["operations"].items():
        method, path = key.split(" ", 1)
        documented = spec["openapi_operation"]
        body_schema = spec.get("request_body_schema") if documented.get("requestBody") else None
        if body_schema is not None and spec["operationId"] in _WITHOUT_REGION:
            body_schema = {**body_schema, "x-forbidden": ["preferred_region"]}
        query = spec.get("query_schema", {}).get("properties", {})
        responses, answer_schemas = {}, {}
        for status in documented.get("responses", {}):
            if status.startswith("2"):
                schema = answer_schemas[status] = spec["response_schema"]
            else:
                schema = _SUBSET_UNAUTHORIZED if status == "401" else _SUBSET_ERROR
            responses[status] = _SubsetValidator(schema, format_checker=_FORMATS)
        operations[(method, _shape(path.removeprefix(SUBSET_PREFIX)))] = Operation(
            operation_id=spec["operationId"],
            path_params=(),
            query_params=tuple(
                (name, (schema, _SubsetValidator(schema, format_checker=_FORMATS))) for name, schema in query.items()
            ),
            body=None if body_schema is None else _SubsetValidator(body_schema, format_checker=_FORMATS),
            body_schema=body_schema,
            responses=responses,
            answer_schemas=answer_schemas,
        )
    return operations


def required_only(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` with every field its (subset) schema does not require left out, at every level."""
    definitions = schema.get("$defs", {})

    def trim(node: Mapping[str, Any], item: Any) -> Any:
        while "$ref" in node:
            node = definitions[node["$ref"].removeprefix("#/$defs/")]
        if isinstance(item, dict) and "properties" in node:
            required = node.get("required", [])
            return {key: trim(node["properties"].get(key, {}), item[key]) for key in required if key in item}
        if isinstance(item, list) and isinstance(node.get("items"), Mapping):
            return [trim(node["items"], element) for element in item]
        return item

    return trim(schema, value)


@cache
def gates(document: Path = DOCUMENT, subset: Path = SUBSET) -> dict[str, Gate]:
    """The gate of each mode; the documents are read and compiled once per process."""
    for path, what in ((document, "Dyte's OpenAPI document"), (subset, "Cloudflare's RealtimeKit subset")):
        if not path.is_file():
            raise FileNotFoundError(f"{what} is missing: {path}")
    with document.open("rb") as stream:
        # The C loader is the safe loader too; it reads the 260 KB document about ten times faster.
        dyte = _json_schema(yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))  # noqa: S506
    return {"dyte": Gate(dyte), "realtimekit": Gate(_realtimekit(dyte), subset_operations(subset))}
