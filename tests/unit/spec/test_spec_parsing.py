"""function.yaml validation: every rule, and messages that name the file, the key and the problem."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from fnplat.domain import RouteSpec
from fnplat.errors import SpecError
from fnplat.spec import ENV_TOTAL_LIMIT, load_spec, parse_route, parse_spec

BASE = "name: hello\nruntime: python3.11\nhandler: app.handler\n"


def spec_error(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "function.yaml")
    return str(caught.value.message)


def test_minimal_spec_gets_lambda_defaults() -> None:
    spec = parse_spec(BASE, "function.yaml")
    assert (spec.name, spec.runtime, spec.handler) == ("hello", "python3.11", "app.handler")
    assert (spec.memory, spec.timeout, spec.auth) == (128, 3, "api_key")
    assert dict(spec.environment) == {} and spec.routes == ()


def test_full_spec() -> None:
    spec = parse_spec(
        textwrap.dedent("""\
            name: api_fn-2
            runtime: nodejs18.x
            handler: src/index.handler
            memory: 10240
            timeout: 900
            environment:
              STAGE: prod
              RETRIES: 3
            routes:
              - GET /items/{id}
              - post /items
              - ANY /files/{path+}
              - $default
            auth: none
            """),
        "function.yaml",
    )
    assert spec.memory == 10240 and spec.timeout == 900 and spec.auth == "none"
    assert dict(spec.environment) == {"STAGE": "prod", "RETRIES": "3"}
    assert [r.route_key for r in spec.routes] == [
        "GET /items/{id}",
        "POST /items",
        "ANY /files/{path+}",
        "$default",
    ]


def test_unknown_key_is_named_with_the_allowed_ones() -> None:
    message = spec_error(BASE + "memroy: 256\n")
    assert message.startswith("function.yaml: unknown key 'memroy' (allowed: name, runtime, handler, memory")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("memory: 64\n", "function.yaml: memory must be an integer between 128 and 10240, got 64"),
        ("memory: 10241\n", "memory must be an integer between 128 and 10240, got 10241"),
        ("memory: '256'\n", "memory must be an integer between 128 and 10240, got '256'"),
        ("memory: 256.5\n", "memory must be an integer between 128 and 10240, got 256.5"),
        ("memory: yes\n", "memory must be an integer between 128 and 10240, got true (a boolean)"),
        ("timeout: 0\n", "function.yaml: timeout must be an integer between 1 and 900, got 0"),
        ("timeout: 901\n", "timeout must be an integer between 1 and 900, got 901"),
        ("auth: iam\n", "function.yaml: auth must be api_key, none, {jwt: {...}} or {authorizer: FUNCTION"),
        ("network: host\n", "function.yaml: network must be one of default, none, got 'host'"),
        ("network: false\n", "network must be one of default, none, got false (a boolean)"),
    ],
)
def test_bad_values(extra: str, expected: str) -> None:
    assert expected in spec_error(BASE + extra)


def test_network_is_default_unless_none() -> None:
    assert parse_spec(BASE, "f").network == "default"
    assert parse_spec(BASE + "network: default\n", "f").network == "default"
    assert parse_spec(BASE + "network: none\n", "f").network == "none"


def test_boundaries_are_inclusive() -> None:
    spec = parse_spec(BASE + "memory: 128\ntimeout: 1\n", "f")
    assert (spec.memory, spec.timeout) == (128, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("runtime: python3.11\nhandler: a.b\n", "function.yaml: missing required key 'name'"),
        ("name: x\nhandler: a.b\n", "function.yaml: missing required key 'runtime'"),
        ("name: x\nruntime: python3.11\n", "missing required key 'handler' for runtime python3.11"),
        (
            "name: x\nruntime: nodejs18.x\n",
            "missing required key 'handler' for runtime nodejs18.x (e.g. index",
        ),
        (
            "name: x\nruntime: java21\nhandler: a.b\n",
            "runtime must be one of python3.11, nodejs18.x",
        ),
        ("name: 'has space'\nruntime: python3.11\nhandler: a.b\n", "name must be 1-64 letters"),
        (f"name: {'x' * 65}\nruntime: python3.11\nhandler: a.b\n", "name must be 1-64 letters"),
        ("name: 12\nruntime: python3.11\nhandler: a.b\n", "name must be a string, got 12"),
        ("name: x\nruntime: python3.11\nhandler: handler\n", "handler must look like 'module.function'"),
        (
            "name: x\nruntime: python3.11\nhandler: 'a. b'\n",
            "handler must be 1-128 characters",
        ),
    ],
)
def test_required_keys_and_identity(text: str, expected: str) -> None:
    assert expected in spec_error(text)


def test_handler_optional_for_image_and_passed_through_for_provided() -> None:
    assert parse_spec("name: x\nruntime: image\n", "f").handler == ""
    assert parse_spec("name: x\nruntime: provided\n", "f").handler == ""
    assert (
        parse_spec("name: x\nruntime: provided\nhandler: function.handler\n", "f").handler
        == "function.handler"
    )
    # Custom runtimes interpret the handler themselves: no module.function rule.
    assert parse_spec("name: x\nruntime: provided\nhandler: main\n", "f").handler == "main"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "function.yaml: is empty"),
        ("- a\n- b\n", "function.yaml: must be a mapping of keys (name, runtime, ...), got a list"),
        ("name: [unclosed\n", "function.yaml: invalid YAML at line"),
    ],
)
def test_not_a_spec_document(text: str, expected: str) -> None:
    assert expected in spec_error(text)


# ------------------------------------------------------------------------ environment


def test_environment_integers_are_stringified() -> None:
    spec = parse_spec(BASE + "environment:\n  PORT: 8080\n  EMPTY: ''\n", "f")
    assert dict(spec.environment) == {"PORT": "8080", "EMPTY": ""}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("DEBUG: true", "environment: DEBUG must be a string or an integer (quote it), got true (a boolean)"),
        ("FLAG: off", "environment: FLAG must be a string or an integer (quote it), got false (a boolean)"),
        ("RATIO: 1.10", "environment: RATIO must be a string or an integer (quote it), got 1.1"),
        ("NOTHING: null", "environment: NOTHING must be a string or an integer (quote it), got null"),
        ("LIST: [1, 2]", "environment: LIST must be a string or an integer (quote it), got a list"),
        ("1ABC: x", "environment: name '1ABC' must match [A-Za-z_][A-Za-z0-9_]*"),
        ("BAD-NAME: x", "environment: name 'BAD-NAME' must match"),
        ("123: x", "environment: name 123 must match"),
        ("AWS_REGION: eu-west-1", "environment: AWS_REGION is reserved by the Lambda runtime environment"),
        ("AWS_ACCESS_KEY_ID: x", "environment: AWS_ACCESS_KEY_ID is reserved"),
        ("AWS_LAMBDA_FUNCTION_NAME: x", "environment: AWS_LAMBDA_FUNCTION_NAME is reserved"),
        ("_HANDLER: x", "environment: _HANDLER is reserved"),
        ("LAMBDA_TASK_ROOT: /x", "environment: LAMBDA_TASK_ROOT is reserved"),
        ("LAMBDA_RUNTIME_DIR: /x", "environment: LAMBDA_RUNTIME_DIR is reserved"),
        ("TZ: UTC", "environment: TZ is reserved"),
    ],
)
def test_environment_rules(env: str, expected: str) -> None:
    message = spec_error(BASE + "environment:\n  " + env + "\n")
    assert message.startswith("function.yaml: ")
    assert expected in message


def test_environment_must_be_a_mapping() -> None:
    assert "environment must be a mapping of NAME: value, got a list" in spec_error(
        BASE + "environment: [A]\n"
    )


def test_environment_total_size_limit() -> None:
    at_limit = "V" * (ENV_TOTAL_LIMIT - 1)  # name "A" + value = exactly the limit
    assert len(parse_spec(BASE + f"environment:\n  A: {at_limit}\n", "f").environment["A"]) == len(at_limit)
    message = spec_error(BASE + f"environment:\n  A: {at_limit}V\n")
    assert f"environment is {ENV_TOTAL_LIMIT + 1} bytes, over the {ENV_TOTAL_LIMIT}-byte limit" in message


# ------------------------------------------------------------------------ routes


@pytest.mark.parametrize(
    ("text", "method", "path"),
    [
        ("GET /", "GET", "/"),
        ("get /hello/{name}", "GET", "/hello/{name}"),
        ("ANY /{proxy+}", "ANY", "/{proxy+}"),
        ("  DELETE   /a/{id}/b  ", "DELETE", "/a/{id}/b"),
        ("$default", "ANY", "$default"),
        ("GET /v1beta/x", "GET", "/v1beta/x"),  # only the exact prefix segment is reserved
        ("OPTIONS /a.b/c-d_e~f/@x:y", "OPTIONS", "/a.b/c-d_e~f/@x:y"),
    ],
)
def test_parse_route_valid(text: str, method: str, path: str) -> None:
    assert parse_route(text) == RouteSpec(method=method, path=path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/hello", "must be 'METHOD /path' or '$default'"),
        ("GET /a /b", "must be 'METHOD /path' or '$default'"),
        ("FETCH /a", "method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY, got 'FETCH'"),
        ("GET hello", "path must start with '/'"),
        ("GET /v1", "path prefix /v1 is reserved by fnplat"),
        ("POST /v1/functions", "path prefix /v1 is reserved"),
        ("GET /2015-03-31/functions/x/invocations", "path prefix /2015-03-31 is reserved"),
        ("GET /metrics", "path prefix /metrics is reserved"),
        ("GET /healthz", "path prefix /healthz is reserved"),
        ("GET /a//b", "empty segment"),
        ("GET /a/", "empty segment"),
        ("GET /{proxy+}/x", "greedy parameter {proxy+} must be the last segment"),
        ("GET /{id}/{id}", "parameter {id} appears twice"),
        ("GET /a{id}", "segment 'a{id}' must be a literal, {name} or a final {name+}"),
        ("GET /{1x}", "segment '{1x}' must be a literal"),
        ("GET /a b", "must be 'METHOD /path'"),
        ("GET /a?b=1", "segment 'a?b=1' has characters not allowed"),
    ],
)
def test_parse_route_invalid(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_route(text)
    assert expected in caught.value.message
    assert repr(text) in caught.value.message or "must be a string" in caught.value.message


def test_route_errors_in_spec_name_file_and_index() -> None:
    message = spec_error(BASE + "routes:\n  - GET /ok\n  - GET /v1/x\n")
    assert message.startswith("function.yaml: routes[1]: route 'GET /v1/x': path prefix /v1 is reserved")


def test_routes_must_be_a_list_of_strings_or_route_mappings() -> None:
    assert "routes must be a list of 'METHOD /path' strings or {route: ...} mappings, got 'GET /a'" in (
        spec_error(BASE + "routes: GET /a\n")
    )
    assert "routes[0]: route must be a string" in spec_error(BASE + "routes:\n  - [GET, /a]\n")
    assert "routes[0]: unknown key 'GET' (allowed: route, auth, cors, payload)" in spec_error(
        BASE + "routes:\n  - {GET: /a}\n"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("GET /a", "GET /a"),
        ("GET /a", "get /a"),
        ("GET /items/{id}", "GET /items/{item}"),  # same requests, different parameter name
        ("ANY /{proxy+}", "ANY /{rest+}"),
        ("$default", "$default"),
    ],
)
def test_duplicate_routes_rejected(first: str, second: str) -> None:
    message = spec_error(BASE + f"routes:\n  - {first}\n  - {second}\n")
    assert "routes[1]:" in message and "duplicates" in message


def test_same_path_different_methods_is_fine() -> None:
    spec = parse_spec(BASE + "routes:\n  - GET /a/{id}\n  - PUT /a/{id}\n  - ANY /a/{id}\n", "f")
    assert len(spec.routes) == 3


# ------------------------------------------------------------------------ load_spec


def test_load_spec_from_dir_and_file(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text(BASE)
    assert load_spec(tmp_path).name == "hello"
    assert load_spec(tmp_path / "function.yaml").name == "hello"


def test_load_spec_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"function\.yaml: not found \(a function directory needs a function\.yaml\)"
    ):
        load_spec(tmp_path)
    (tmp_path / "function.yaml").write_text(BASE + "memory: 1\n")
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / 'function.yaml'}: memory must be")
    (tmp_path / "function.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path)


def test_examples_and_templates_are_valid_specs() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    names = {load_spec(d).name for d in examples.iterdir() if d.is_dir()}
    assert names == {"hello", "yaml-to-json", "hello-node", "hello-provided", "hello-image"}


# ---- input bounds: size cap and YAML aliases


def test_spec_over_the_size_cap_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    from fnplat import spec as spec_module

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed an oversized function.yaml")

    monkeypatch.setattr(spec_module.yaml, "load", never)
    padding = "# " + "x" * 1000 + "\n"
    text = BASE + padding * (spec_module.SPEC_SIZE_LIMIT // len(padding) + 1)
    assert spec_error(text).startswith(f"function.yaml: is {len(text)} bytes, over the 65536-byte limit")


def test_spec_size_counts_bytes_not_characters() -> None:
    from fnplat.spec import SPEC_SIZE_LIMIT

    comment = "# " + "é" * ((SPEC_SIZE_LIMIT - len(BASE)) // 2) + "\n"  # fewer characters than bytes
    assert len(BASE + comment) <= SPEC_SIZE_LIMIT < len((BASE + comment).encode())
    assert "over the 65536-byte limit" in spec_error(BASE + comment)
    parse_spec(BASE + "# " + "x" * (SPEC_SIZE_LIMIT - len(BASE) - 3) + "\n", "function.yaml")  # at the cap


def test_load_spec_reads_no_more_than_the_cap(tmp_path: Path) -> None:
    (tmp_path / "function.yaml").write_text(BASE + "#" * (10 * 1024 * 1024) + "\n")
    with pytest.raises(SpecError, match=re.escape("is 65537 bytes, over the 65536-byte limit")):
        load_spec(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        BASE.replace("name: hello", "name: &n hello") + "environment: {NAME: *n}\n",  # valid if expanded
        BASE + "environment: &e {A: b}\nx: *e\n",
        BASE + "environment:\n  <<: *e\n",  # a merge key is an alias too
        "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n",  # billion laughs, in small
    ],
)
def test_yaml_aliases_are_refused(text: str) -> None:
    message = spec_error(text)
    assert "YAML aliases are not allowed" in message and "write the value out" in message


def test_an_anchor_alone_is_harmless() -> None:
    assert parse_spec(BASE.replace("name: hello", "name: &n hello"), "function.yaml").name == "hello"
