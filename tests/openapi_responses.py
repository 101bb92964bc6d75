#!/usr/bin/env python3
"""Checks real responses against openapi.yaml (run by tests/tests/deploy_openapi.rs).

    openapi_responses.py <openapi.yaml> <responses.jsonl>

Each line of responses.jsonl: {"method", "route" (the path pattern), "status", "headers",
"body"}. For each response: the operation and its response for that status must be
documented; a body must have the documented content type and match its schema (OpenAPI 3.1
schema dialect, $refs into the spec); a response documented without content must have no body.
Prints one line per problem and exits 1 if there is any.
"""

import json
import sys

import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def main():
    spec_path, responses_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    registry = Registry().with_resource(
        "urn:tglink:openapi", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    problems = []
    checked = 0
    with open(responses_path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            where = f'{r["method"]} {r["route"]} -> {r["status"]}'
            operation = spec["paths"].get(r["route"], {}).get(r["method"].lower())
            if operation is None:
                problems.append(f"{where}: operation not in the spec")
                continue
            response = operation["responses"].get(str(r["status"]))
            if response is None:
                problems.append(f"{where}: status not documented")
                continue
            pointer = None
            if "$ref" in response:
                pointer = response["$ref"]
                response = resolve(spec, pointer)
            content_type = r["headers"].get("content-type", "").split(";")[0].strip()
            content = response.get("content")
            if not r["body"]:
                checked += 1
                continue
            if not content:
                problems.append(f"{where}: a body, but none is documented")
                continue
            if content_type not in content:
                problems.append(f"{where}: content type {content_type!r}, documented {list(content)}")
                continue
            try:
                body = json.loads(r["body"])
            except ValueError:
                problems.append(f"{where}: the body is not JSON")
                continue
            wrapped = {"$id": "urn:tglink:response", "$ref": "urn:tglink:openapi#" + json_pointer(
                r["route"], r["method"], r["status"], content_type, pointer)}
            validator = OAS31Validator(wrapped, registry=registry)
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
            for e in errors:
                path = "/".join(str(p) for p in e.path)
                problems.append(f"{where}: {path or '<body>'}: {e.message}")
            checked += 1
    for p in problems:
        print(p)
    print(f"{checked} responses conform" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


def resolve(spec, ref):
    node = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def escape(part):
    return str(part).replace("~", "~0").replace("/", "~1")


def json_pointer(route, method, status, content_type, ref):
    if ref is not None:
        base = ref.lstrip("#")
    else:
        base = "/" + "/".join(escape(p) for p in ["paths", route, method.lower(), "responses", str(status)])
    return base + "/" + "/".join(escape(p) for p in ["content", content_type, "schema"])


if __name__ == "__main__":
    main()
