"""The OpenAPI document (``schemas/openapi.json``) is well formed, lists exactly the routes
the application registers, and tells the truth: real responses from a real gateway on
loopback validate against the schema documented for their method, path, status and
content type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

import schemas
from adapters import default_registry
from gateway.app import create_app
from gateway.config import load_deployment
from gateway.testing import RecordingReceiver
from tests.conftest import RunningGateway
from tests.support import (
    CANONICAL,
    CSC,
    EXAMPLE,
    OPERATOR_TOKEN,
    POLICE,
    SCHOOL,
    TOKENS,
    auth,
    body,
    eventually,
    sample_message,
    write_deployment,
)

DOC: dict[str, Any] = schemas.load("openapi.json")
DOC_URI = "https://schemas.mash-gateway.example/openapi.json"
SCHEMA_DIR = Path(schemas.__file__).parent
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

IG = {"Authorization": "Bearer test-ig-lead-token"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
CHILD = {"system": "nhs-number", "value": "9990000026"}


def _registry() -> Registry[Any]:
    """The OpenAPI document (so ``#/components/...`` resolves) and every published JSON
    Schema under its ``$id`` (so the canonical message and consent record resolve)."""
    resources = [(DOC_URI, DRAFT202012.create_resource(DOC))]
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry: Registry[Any] = Registry().with_resources(resources)
    return registry.crawl()


REGISTRY = _registry()


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(*tokens: str) -> str:
    return "".join("/" + _escape(t) for t in tokens)


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


def _at(pointer: str) -> Any:
    node: Any = DOC
    for token in _tokens(pointer):
        node = node[token]
    return node


def _follow(pointer: str) -> tuple[str, dict[str, Any]]:
    """The object at ``pointer``, following OpenAPI ``$ref`` objects to where it is defined."""
    node = _at(pointer)
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/components/responses/"):
        pointer = node["$ref"][1:]
        node = _at(pointer)
    assert isinstance(node, dict)
    return pointer, node


def _validator(schema_pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{DOC_URI}#{schema_pointer}"}, registry=REGISTRY)


def _errors(validator: Draft202012Validator, instance: Any) -> str:
    found = list(validator.iter_errors(instance))
    if not found:
        return ""
    worst = best_match(found)
    where = "/" + "/".join(str(p) for p in worst.absolute_path)
    return f"{len(found)} error(s); first at {where}: {worst.message}"


# -- the document on its own -------------------------------------------------------------------

_NON_EMPTY = {"type": "string", "minLength": 1}
_MEDIA = {
    "type": "object",
    "required": ["schema"],
    "properties": {"schema": {"type": ["object", "boolean"]}},
}
_RESPONSE = {
    "oneOf": [
        {
            "type": "object",
            "required": ["$ref"],
            "additionalProperties": False,
            "properties": {"$ref": {"type": "string", "pattern": "^#/components/responses/"}},
        },
        {
            "type": "object",
            "required": ["description"],
            "additionalProperties": False,
            "properties": {
                "description": _NON_EMPTY,
                "headers": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["schema"],
                        "properties": {"description": _NON_EMPTY, "required": {"type": "boolean"}},
                    },
                },
                "content": {"type": "object", "minProperties": 1, "additionalProperties": _MEDIA},
            },
        },
    ]
}
_PARAMETER = {
    "type": "object",
    "required": ["name", "in", "schema", "description"],
    "properties": {
        "name": _NON_EMPTY,
        "in": {"enum": ["path", "query", "header", "cookie"]},
        "required": {"type": "boolean"},
        "description": _NON_EMPTY,
        "schema": {"type": ["object", "boolean"]},
    },
    "if": {"properties": {"in": {"const": "path"}}},
    "then": {"required": ["required"], "properties": {"required": {"const": True}}},
}
_OPERATION = {
    "type": "object",
    "required": ["operationId", "summary", "description", "security", "responses"],
    "additionalProperties": False,
    "properties": {
        "operationId": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]*$"},
        "tags": {"type": "array", "items": _NON_EMPTY},
        "summary": _NON_EMPTY,
        "description": _NON_EMPTY,
        "security": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": {"type": "array", "items": _NON_EMPTY}},
        },
        "parameters": {"type": "array", "items": _PARAMETER},
        "requestBody": {
            "type": "object",
            "required": ["content"],
            "properties": {
                "required": {"type": "boolean"},
                "description": _NON_EMPTY,
                "content": {"type": "object", "minProperties": 1, "additionalProperties": _MEDIA},
            },
        },
        "responses": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[1-5][0-9]{2}$"},
            "additionalProperties": _RESPONSE,
        },
    },
}
OPENAPI_META_CHECK: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["openapi", "info", "paths", "components"],
    "properties": {
        "openapi": {"const": "3.1.0"},
        "jsonSchemaDialect": {"const": "https://json-schema.org/draft/2020-12/schema"},
        "info": {
            "type": "object",
            "required": ["title", "version", "description"],
            "properties": {"title": _NON_EMPTY, "version": _NON_EMPTY, "description": _NON_EMPTY},
        },
        "paths": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"enum": list(METHODS)},
                "additionalProperties": _OPERATION,
            },
        },
        "components": {
            "type": "object",
            "required": ["schemas", "securitySchemes"],
            "properties": {
                "schemas": {"type": "object", "additionalProperties": {"type": ["object", "boolean"]}},
                "responses": {"type": "object", "additionalProperties": _RESPONSE},
                "securitySchemes": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["type", "description"],
                        "properties": {"type": {"enum": ["http", "apiKey", "oauth2", "openIdConnect"]}},
                    },
                },
            },
        },
    },
}


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for template, item in DOC["paths"].items():
        for method, operation in item.items():
            yield method, template, operation


def _refs(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, f"{where}/{_escape(key)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{where}/{i}")


def _responses() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for method, template, _ in _operations():
        for status in DOC["paths"][template][method]["responses"]:
            _, response = _follow(_pointer("paths", template, method, "responses", status))
            yield method, template, status, response


class TestDocument:
    def test_meets_the_openapi_3_1_meta_check(self) -> None:
        Draft202012Validator.check_schema(OPENAPI_META_CHECK)
        validator = Draft202012Validator(OPENAPI_META_CHECK)
        assert _errors(validator, DOC) == ""

    def test_every_ref_resolves(self) -> None:
        resolver = REGISTRY.resolver(base_uri=DOC_URI)
        broken = []
        refs = list(_refs(DOC))
        for where, ref in refs:
            try:
                resolver.lookup(ref)
            except Unresolvable as exc:
                broken.append(f"{where}: {ref} ({type(exc).__name__})")
        assert len(refs) > 50
        assert broken == []

    def test_every_component_schema_is_a_valid_2020_12_schema_and_is_used(self) -> None:
        components: dict[str, Any] = DOC["components"]["schemas"]
        for name, schema in components.items():
            Draft202012Validator.check_schema(schema)
            assert schema.get("description"), f"components/schemas/{name} has no description"
        used = {ref.rsplit("/", 1)[1] for _, ref in _refs(DOC) if ref.startswith("#/components/schemas/")}
        assert set(components) - used == set(), "component schemas nothing refers to"

    def test_the_problem_schema_has_the_fields_the_middleware_emits(self) -> None:
        problem = DOC["components"]["schemas"]["Problem"]
        assert set(problem["properties"]) == {"type", "title", "status", "detail", "errors", "adapter"}
        assert set(problem["required"]) == {"type", "title", "status", "detail"}
        assert problem["additionalProperties"] is False

    def test_path_parameters_match_the_template(self) -> None:
        for method, template, operation in _operations():
            in_template = {part[1:-1] for part in template.split("/") if part.startswith("{")}
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_template, f"{method.upper()} {template}"

    def test_operation_ids_are_unique(self) -> None:
        ids = [operation["operationId"] for _, _, operation in _operations()]
        assert len(ids) == len(set(ids))

    def test_errors_are_problem_details_and_successes_are_json(self) -> None:
        wrong = []
        for method, template, status, response in _responses():
            types = set(response.get("content", {}))
            if (method, template, status) == ("get", "/readyz", "503"):
                expected = {"application/json"}  # a probe answer, not a problem
            elif int(status) >= 400:
                expected = {"application/problem+json"}
            elif template == "/metrics":
                expected = {"text/plain"}
            else:
                expected = {"application/json"}
            if types != expected:
                wrong.append(f"{method.upper()} {template} {status}: {sorted(types)} != {sorted(expected)}")
        assert wrong == []

    def test_security_names_who_may_call(self) -> None:
        schemes = DOC["components"]["securitySchemes"]
        for method, template, operation in _operations():
            requirement = operation["security"]
            label = f"{method.upper()} {template}"
            if template.startswith("/v1/"):
                assert len(requirement) == 1, label
                ((scheme, roles),) = requirement[0].items()
                assert scheme in schemes, label
                if template.startswith("/v1/ops/"):
                    assert (scheme, sorted(roles)) == ("operatorToken", ["admin", "operator"]), label
                elif template.startswith(("/v1/consents", "/v1/reviews", "/v1/admin/")):
                    assert (scheme, sorted(roles)) == ("operatorToken", ["admin", "ig-lead"]), label
                else:
                    assert (scheme, roles) == ("partnerToken", []), label
                assert {"401", "500"} <= set(operation["responses"]), label
            else:
                assert requirement == [], f"{label} needs no token"

    def test_send_message_takes_the_media_types_the_adapters_accept(self) -> None:
        operation = DOC["paths"]["/v1/messages"]["post"]
        assert set(operation["requestBody"]["content"]) == set(default_registry().by_content_type)
        assert CANONICAL in operation["requestBody"]["content"]
        assert {p["name"] for p in operation["parameters"]} == {"Idempotency-Key"}


# -- the document against the application --------------------------------------------------------


def _registered_routes(tmp_path: Path) -> set[tuple[str, str]]:
    config = write_deployment(tmp_path / "deploy", receiver_base="http://127.0.0.1:9")
    app = create_app(load_deployment(config))
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical.startswith("/console"):  # HTML pages for people, not the partner API (docs/console.md)
            continue
        routes.add((route.method, canonical))
    return routes


def test_documented_routes_are_exactly_the_registered_ones(tmp_path: Path) -> None:
    registered = _registered_routes(tmp_path)
    documented = {(method.upper(), template) for method, template, _ in _operations()}
    undocumented = sorted(registered - documented)
    not_served = sorted(documented - registered)
    assert (undocumented, not_served) == ([], []), (
        "the OpenAPI document and app.router disagree:\n"
        + "".join(f"  registered but not documented: {m} {p}\n" for m, p in undocumented)
        + "".join(f"  documented but not registered: {m} {p}\n" for m, p in not_served)
    )
    assert ("POST", "/v1/messages") in registered


# -- real responses against the document ----------------------------------------------------------


class Checker:
    """Calls a running gateway and checks each answer against the document."""

    def __init__(self, gw: RunningGateway) -> None:
        self.gw = gw

    async def call(
        self,
        method: str,
        template: str,
        status: int,
        *,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = self.gw.url(path or template)
        async with self.gw.http.request(
            method, url, headers=headers, data=data, json=json_body, params=params
        ) as r:
            raw = await r.read()
            content_type = r.content_type
            response_headers = r.headers
        label = f"{method} {template}"
        assert r.status == status, f"{label}: expected {status}, got {r.status}: {raw[:500]!r}"
        documented = DOC["paths"][template][method.lower()]["responses"]
        assert str(status) in documented, f"{label}: {status} is not documented (only {sorted(documented)})"
        pointer, response = _follow(_pointer("paths", template, method.lower(), "responses", str(status)))
        content = response["content"]
        assert content_type in content, f"{label} {status}: {content_type} is not one of {sorted(content)}"
        for name, header in response.get("headers", {}).items():
            if header.get("required"):
                assert name in response_headers, f"{label} {status}: header {name} missing"
                header_schema = _validator(_pointer(*_tokens(pointer), "headers", name, "schema"))
                assert _errors(header_schema, response_headers[name]) == ""
        schema_pointer = _pointer(*_tokens(pointer), "content", content_type, "schema")
        parsed: Any = raw.decode() if content_type.startswith("text/") else json.loads(raw)
        problems = _errors(_validator(schema_pointer), parsed)
        assert problems == "", f"{label} {status}: the body drifts from the document: {problems}"
        return parsed


def _request_schema(method: str, template: str, media_type: str) -> Draft202012Validator:
    return _validator(_pointer("paths", template, method, "requestBody", "content", media_type, "schema"))


def _mutated(change: Any) -> bytes:
    doc = sample_message()
    change(doc)
    return body(doc)


class TestPartnerApi:
    async def test_send_and_status(self, gateway: RunningGateway, receiver: RecordingReceiver) -> None:
        api = Checker(gateway)
        send = "/v1/messages"
        doc = sample_message()
        assert _errors(_request_schema("post", send, CANONICAL), doc) == ""
        key = {**auth(POLICE), "Idempotency-Key": "openapi-0001"}

        first = await api.call("POST", send, 202, headers=key, data=body(doc))
        again = await api.call("POST", send, 202, headers=key, data=body(doc))
        assert (first["duplicate"], again["duplicate"]) == (False, True)
        assert again["message_id"] == first["message_id"]
        other = _mutated(lambda d: d["envelope"].update(sender_reference="NS-OPENAPI-OTHER"))
        conflict = await api.call("POST", send, 409, headers=key, data=other)
        assert conflict["type"].endswith("/idempotency-conflict")

        await api.call("POST", send, 401, headers={"Content-Type": CANONICAL}, data=body(doc))
        await api.call("POST", send, 401, headers={**OPERATOR, "Content-Type": CANONICAL}, data=body(doc))
        unsupported = await api.call(
            "POST", send, 415, headers={**auth(POLICE), "Content-Type": "text/plain"}, data=body(doc)
        )
        assert unsupported["errors"][0]["rule"] == "content-type"
        too_big = await api.call("POST", send, 413, headers=auth(POLICE), data=b"x" * 300_000)
        assert too_big["errors"][0]["rule"] == "max-body-bytes"
        invalid = await api.call(
            "POST",
            send,
            422,
            headers=auth(POLICE),
            data=_mutated(lambda d: d["envelope"].pop("occurred_at")),
        )
        assert (invalid["type"].rsplit("/", 1)[1], invalid["adapter"]) == (
            "invalid-message",
            "canonical-json",
        )
        assert {"field": "/envelope", "rule": "required"} in [
            {"field": e["field"], "rule": e["rule"]} for e in invalid["errors"]
        ]
        unknown = await api.call(
            "POST",
            send,
            422,
            headers=auth(POLICE),
            data=_mutated(lambda d: d["envelope"].update(recipients=["ghost-partner"])),
        )
        assert unknown["type"].endswith("/unknown-recipient")
        bad_key = await api.call(
            "POST", send, 422, headers={**auth(POLICE), "Idempotency-Key": "k" * 201}, data=body(doc)
        )
        assert "adapter" not in bad_key
        await api.call(
            "POST",
            send,
            403,
            headers=auth(POLICE),
            data=_mutated(lambda d: d["envelope"].update(source=CSC)),
        )

        status = "/v1/messages/{message_id}"
        status_path = first["status_url"]

        async def delivered() -> bool:
            doc = await api.call("GET", status, 200, path=status_path, headers=auth(POLICE))
            return bool(doc["status"] == "delivered")

        await eventually(delivered, 10)
        final = await api.call("GET", status, 200, path=status_path, headers=auth(POLICE))
        assert all(isinstance(r["delivered_at"], float) for r in final["recipients"])
        await api.call("GET", status, 403, path=status_path, headers=auth(SCHOOL))
        await api.call("GET", status, 404, path="/v1/messages/msg_unknown", headers=auth(POLICE))
        await api.call("GET", status, 401, path=status_path)
        webhook_partner = await api.call("GET", "/v1/inbox", 409, headers=auth(SCHOOL))
        assert webhook_partner["type"].endswith("/not-a-pull-partner")

    async def test_pull_and_acknowledge(self, gateway: RunningGateway) -> None:
        api = Checker(gateway)
        doc = sample_message()
        doc["envelope"].update(
            event_type="social-care.referral-outcome", purpose="referral-feedback", recipients=[POLICE]
        )
        doc["items"] = [
            {
                "category": "event.outcome",
                "type": "outcome",
                "about": ["child-1"],
                "data": {"outcome": "accepted", "worker": "Duty social worker (demo)"},
            }
        ]
        sent = await api.call(
            "POST",
            "/v1/messages",
            202,
            headers={**auth(CSC), "Content-Type": "application/json"},
            data=body(doc),
        )
        inbox = await api.call("GET", "/v1/inbox", 200, path="/v1/inbox?limit=10", headers=auth(POLICE))
        assert [i["message_id"] for i in inbox["items"]] == [sent["message_id"]]
        assert "payload" in inbox["items"][0]
        await api.call("GET", "/v1/inbox", 422, path="/v1/inbox?limit=0", headers=auth(POLICE))
        await api.call("GET", "/v1/inbox", 401)

        ack = "/v1/inbox/{delivery_id}/ack"
        ack_path = f"/v1/inbox/{inbox['items'][0]['delivery_id']}/ack"
        await api.call("POST", ack, 404, path=ack_path, headers=auth(SCHOOL))
        done = await api.call("POST", ack, 200, path=ack_path, headers=auth(POLICE))
        assert done["state"] == "delivered"
        await api.call("POST", ack, 404, path=ack_path, headers=auth(POLICE))
        await api.call("POST", ack, 401, path=ack_path)
        status = await api.call(
            "GET", "/v1/messages/{message_id}", 200, path=sent["status_url"], headers=auth(CSC)
        )
        assert status["status"] == "delivered"


class TestOperationsApi:
    async def test_queues_and_dead_letters(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        api = Checker(gateway)
        receiver.set_behaviour(CSC, status=400)  # a permanent refusal: dead-lettered at once
        await api.call("POST", "/v1/messages", 202, headers=auth(POLICE), data=body(sample_message()))
        letters: list[dict[str, Any]] = []

        async def dead_lettered() -> bool:
            nonlocal letters
            found = await api.call("GET", "/v1/ops/dead-letters", 200, headers=OPERATOR)
            letters = found["dead_letters"]
            return bool(letters)

        await eventually(dead_lettered, 10)
        assert [(d["partner"], d["last_error"]) for d in letters] == [(CSC, "http-400")]
        only = await api.call(
            "GET", "/v1/ops/dead-letters", 200, headers=OPERATOR, params={"partner": SCHOOL}
        )
        assert only == {"dead_letters": []}
        queues = await api.call("GET", "/v1/ops/queues", 200, headers=OPERATOR)
        by_partner = {q["partner"]: q for q in queues["queues"]}
        assert by_partner[CSC]["dead_letters"] == 1
        assert {q["mode"] for q in queues["queues"]} == {"webhook", "pull"}

        await api.call("GET", "/v1/ops/queues", 401)
        await api.call("GET", "/v1/ops/queues", 403, headers={"Authorization": f"Bearer {TOKENS[CSC]}"})
        await api.call("GET", "/v1/ops/dead-letters", 403, headers=IG)

        replay = "/v1/ops/dead-letters/{delivery_id}/replay"
        discard = "/v1/ops/dead-letters/{delivery_id}/discard"
        letter = letters[0]["delivery_id"]
        reason = {"reason": "partner fixed its endpoint"}
        assert _errors(_request_schema("post", replay, "application/json"), reason) == ""
        no_reason = await api.call(
            "POST", replay, 422, path=f"/v1/ops/dead-letters/{letter}/replay", headers=OPERATOR, json_body={}
        )
        assert no_reason["errors"][0]["field"] == "/reason"
        too_big = await api.call(
            "POST",
            discard,
            413,
            path=f"/v1/ops/dead-letters/{letter}/discard",
            headers=OPERATOR,
            data=b"x" * 20_000,
        )
        assert too_big["errors"][0]["rule"] == "max-body-bytes"
        replayed = await api.call(
            "POST",
            replay,
            200,
            path=f"/v1/ops/dead-letters/{letter}/replay",
            headers=OPERATOR,
            json_body=reason,
        )
        assert replayed == {"delivery_id": letter, "state": "ready"}
        await eventually(dead_lettered, 10)  # the partner still refuses it
        assert [d["delivery_id"] for d in letters] == [letter]
        original = "/v1/ops/dead-letters/{delivery_id}/replay-original"
        original_path = f"/v1/ops/dead-letters/{letter}/replay-original"
        assert _errors(_request_schema("post", original, "application/json"), reason) == ""
        await api.call("POST", original, 422, path=original_path, headers=OPERATOR, json_body={})
        await api.call("POST", original, 403, path=original_path, headers=IG, json_body=reason)
        rebuilt = await api.call(
            "POST", original, 200, path=original_path, headers=OPERATOR, json_body=reason
        )
        assert (rebuilt["delivery_id"], rebuilt["queued"], rebuilt["effect"]) == (letter, True, "permit")
        await eventually(dead_lettered, 10)  # rebuilt, but the partner still refuses it
        assert [d["delivery_id"] for d in letters] == [letter]
        gone = await api.call(
            "POST",
            discard,
            200,
            path=f"/v1/ops/dead-letters/{letter}/discard",
            headers=OPERATOR,
            json_body=reason,
        )
        assert gone == {"delivery_id": letter, "state": "discarded"}
        await api.call(
            "POST",
            replay,
            404,
            path=f"/v1/ops/dead-letters/{letter}/replay",
            headers=OPERATOR,
            json_body=reason,
        )
        await api.call(
            "POST", discard, 403, path=f"/v1/ops/dead-letters/{letter}/discard", headers=IG, json_body=reason
        )
        await api.call("POST", original, 404, path=original_path, headers=OPERATOR, json_body=reason)


def _referral() -> bytes:
    return (EXAMPLE / "messages" / "early-help-referral.json").read_bytes()


class TestInformationGovernanceApi:
    async def test_reviews(self, gateway: RunningGateway) -> None:
        api = Checker(gateway)
        sent = await api.call("POST", "/v1/messages", 202, headers=auth(SCHOOL), data=_referral())
        status = await api.call(
            "GET", "/v1/messages/{message_id}", 200, path=sent["status_url"], headers=auth(SCHOOL)
        )
        assert status["status"] == "held"
        queue = await api.call("GET", "/v1/reviews", 200, headers=IG)
        (held,) = queue["reviews"]
        assert (held["message_id"], held["decision"]["effect"]) == (sent["message_id"], "review")
        await api.call("GET", "/v1/reviews", 403, headers=OPERATOR)
        await api.call("GET", "/v1/reviews", 401)

        approve = "/v1/reviews/{delivery_id}/approve"
        reject = "/v1/reviews/{delivery_id}/reject"
        approve_path = f"/v1/reviews/{held['delivery_id']}/approve"
        reason = {"reason": "verbal consent confirmed"}
        await api.call("POST", approve, 422, path=approve_path, headers=IG, json_body={"reason": "  "})
        await api.call("POST", approve, 403, path=approve_path, headers=OPERATOR, json_body=reason)
        approved = await api.call("POST", approve, 200, path=approve_path, headers=IG, json_body=reason)
        assert approved == {"delivery_id": held["delivery_id"], "state": "ready"}
        await api.call(
            "POST",
            reject,
            404,
            path=f"/v1/reviews/{held['delivery_id']}/reject",
            headers=IG,
            json_body=reason,
        )
        await api.call("POST", approve, 401, path=approve_path, json_body=reason)

        second = await api.call("POST", "/v1/messages", 202, headers=auth(SCHOOL), data=_referral())
        (other,) = (await api.call("GET", "/v1/reviews", 200, headers=IG))["reviews"]
        assert other["message_id"] == second["message_id"]
        rejected = await api.call(
            "POST",
            reject,
            200,
            path=f"/v1/reviews/{other['delivery_id']}/reject",
            headers=IG,
            json_body=reason,
        )
        assert rejected["state"] == "rejected"

    async def test_consents(self, gateway: RunningGateway) -> None:
        api = Checker(gateway)
        consents = "/v1/consents"
        record = {
            "subject": CHILD,
            "purpose": "early-help",
            "scope": CSC,
            "state": "given",
            "decided_by": "parent-with-parental-responsibility",
            "evidence_ref": "EH-FORM-0001",
        }
        assert _errors(_request_schema("post", consents, "application/json"), record) == ""
        created = await api.call("POST", consents, 201, headers=IG, json_body=record)
        assert (created["state"], created["cancelled_deliveries"]) == ("given", [])
        sector = await api.call(
            "POST",
            consents,
            201,
            headers=IG,
            json_body={**record, "scope": "sector:social-care", "expires_at": "2099-01-01T00:00:00+00:00"},
        )
        invalid = await api.call("POST", consents, 422, headers=IG, json_body={**record, "state": "maybe"})
        assert invalid["adapter"] == "consent-record"
        await api.call("POST", consents, 422, headers=IG, json_body={**record, "purpose": "fun"})
        await api.call("POST", consents, 422, headers=IG, data=b"{not json")
        await api.call("POST", consents, 403, headers=auth(SCHOOL), json_body=record)
        await api.call("POST", consents, 403, headers=OPERATOR, json_body=record)
        await api.call("POST", consents, 401, json_body=record)

        withdraw = "/v1/consents/{record_id}/withdraw"
        reason = {"reason": "parent withdrew consent by phone"}
        assert _errors(_request_schema("post", withdraw, "application/json"), reason) == ""
        withdrawn = await api.call(
            "POST",
            withdraw,
            201,
            path=f"/v1/consents/{created['record_id']}/withdraw",
            headers=IG,
            json_body=reason,
        )
        assert withdrawn["withdraws"] == created["record_id"]
        await api.call(
            "POST", withdraw, 404, path="/v1/consents/con_unknown/withdraw", headers=IG, json_body=reason
        )
        await api.call(
            "POST",
            withdraw,
            422,
            path=f"/v1/consents/{created['record_id']}/withdraw",
            headers=IG,
            json_body={},
        )

        found = await api.call("GET", consents, 200, headers=IG, params=CHILD)
        ids = {r["record_id"]: r for r in found["records"]}
        assert set(ids) == {created["record_id"], sector["record_id"], withdrawn["record_id"]}
        assert isinstance(ids[sector["record_id"]]["expires_at"], float)
        assert ids[withdrawn["record_id"]]["evidence_ref"] == reason["reason"]
        assert CHILD["value"] not in json.dumps(found)
        nobody = await api.call(
            "GET", consents, 200, headers=IG, params={"system": "nhs-number", "value": "9990000034"}
        )
        assert nobody == {"records": []}
        await api.call("GET", consents, 422, headers=IG, params={"system": "nhs-number"})
        await api.call("GET", consents, 403, headers=OPERATOR, params=CHILD)

    async def test_policy_reload(self, gateway: RunningGateway) -> None:
        api = Checker(gateway)
        reload = "/v1/admin/policy/reload"
        before = gateway.services.policy.current.version
        same = await api.call("POST", reload, 200, headers=IG)
        assert same == {"policy_version": before}
        path = gateway.config_dir / "agreements.yaml"
        path.write_text(path.read_text().replace("to: [csc-northshire]", "to: [ghost-partner]", 1))
        refused = await api.call("POST", reload, 422, headers=IG)
        assert {e["rule"] for e in refused["errors"]} == {"policy-invalid"}
        await api.call("POST", reload, 403, headers=OPERATOR)
        await api.call("POST", reload, 401)


class TestHealth:
    async def test_probes_metrics_and_the_document(
        self, gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        api = Checker(gateway)
        assert await api.call("GET", "/healthz", 200) == {"status": "ok"}
        ready = await api.call("GET", "/readyz", 200)
        assert ready["policy_version"] == gateway.services.policy.current.version
        metrics = await api.call("GET", "/metrics", 200)
        assert "gateway_" in metrics
        served = await api.call("GET", "/openapi.json", 200)
        assert served == DOC

        async def broken() -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(gateway.services.backend, "ping", broken)
        assert await api.call("GET", "/readyz", 503) == {"status": "unavailable", "store": "OSError"}
        monkeypatch.setattr(gateway.services.backend, "stats", broken)
        # A scrape still answers while the store is down, and says so
        scraped = await api.call("GET", "/metrics", 200)
        assert "gateway_store_up 0.0" in scraped
        assert "disk" not in json.dumps(scraped)


async def test_the_checks_can_fail(gateway: RunningGateway) -> None:
    """An undocumented status fails, and so does a real body that drifts in any direction."""
    api = Checker(gateway)
    with pytest.raises(AssertionError, match="404 is not documented"):
        await api.call("GET", "/healthz", 404, path="/healthz/nope")
    accepted = await api.call("POST", "/v1/messages", 202, headers=auth(POLICE), data=body(sample_message()))
    schema = _validator(
        _pointer("paths", "/v1/messages", "post", "responses", "202", "content", "application/json", "schema")
    )
    drifts: list[dict[str, Any]] = [
        {k: v for k, v in accepted.items() if k != "duplicate"},
        {**accepted, "extra": 1},
        {**accepted, "duplicate": "no"},
        {**accepted, "message_id": "42"},
    ]
    for drifted in drifts:
        assert _errors(schema, drifted) != "", drifted
    problem = await api.call("GET", "/v1/inbox", 401)
    for wrong in ({**problem, "status": 403}, {**problem, "errors": []}, {**problem, "type": "about:blank"}):
        assert _errors(_validator("/components/schemas/UnauthorizedProblem"), wrong) != "", wrong
