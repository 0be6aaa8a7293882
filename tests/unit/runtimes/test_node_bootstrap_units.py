"""Pure pieces of the Node.js bootstrap, called through `node -e` (the module exports them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[3] / "runtimes" / "nodejs18.x" / "bootstrap.js"


def node_eval(expression: str) -> object:
    """Evaluate an expression with the bootstrap module bound to `b`; return its JSON value."""
    module = json.dumps(str(BOOTSTRAP))
    script = f"const b = require({module});\nprocess.stdout.write(JSON.stringify({expression}));"
    node = shutil.which("node")
    assert node is not None, "node is needed for the Node.js runtime tests"
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        ("index.handler", ["", "index", "handler"]),
        ("lib/sub/mod.api.v1.fn", ["lib/sub/", "mod", "api.v1.fn"]),
        ("/abs/dir/app.handler", ["/abs/dir/", "app", "handler"]),
    ],
)
def test_split_handler(handler: str, expected: list[str]) -> None:
    assert node_eval(f"b.splitHandler({json.dumps(handler)})") == expected


@pytest.mark.parametrize("handler", ["index", "../up/index.handler"])
def test_malformed_handlers(handler: str) -> None:
    expression = (
        f"(() => {{ try {{ b.splitHandler({json.dumps(handler)}); }} catch (e) {{ return e.name; }} }})()"
    )

    assert node_eval(expression) == "Runtime.MalformedHandlerName"


def test_error_bodies() -> None:
    bodies = node_eval("[b.toErrorBody(new TypeError('t')), b.toErrorBody(42), b.toErrorBody({a: 1})]")

    assert isinstance(bodies, list)
    typed, number, obj = bodies
    assert typed["errorType"] == "TypeError" and typed["errorMessage"] == "t"
    assert typed["trace"][0] == "TypeError: t"
    assert number == {"errorType": "number", "errorMessage": "42", "trace": []}
    assert obj == {"errorType": "object", "errorMessage": "[object Object]", "trace": []}


def test_serialize() -> None:
    expression = (
        "[b.serialize(undefined), b.serialize({a: [1]}),"
        " (() => { const c = {}; c.c = c; try { b.serialize(c); } catch (e) { return e.name; } })()]"
    )

    assert node_eval(expression) == ["null", '{"a":[1]}', "Runtime.JSONStringifyError"]


def test_nearest_package_json_decides_module_type(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "cjs").mkdir()
    (tmp_path / "cjs" / "package.json").write_text('{"type": "commonjs"}')
    (tmp_path / "inherits").mkdir()
    (tmp_path / "node_modules" / "dep").mkdir(parents=True)

    checks = [
        str(tmp_path),
        str(tmp_path / "cjs"),
        str(tmp_path / "inherits"),
        str(tmp_path / "node_modules"),
    ]
    result = node_eval(f"{json.dumps(checks)}.map((d) => b.packageTypeIsModule(d))")

    assert result == [True, False, True, False]


def parsed(raw: bytes) -> object:
    """parseResponse on `raw`, as JSON (body as text, or null while incomplete)."""
    literal = json.dumps(raw.decode("latin-1"))
    return node_eval(
        f"(() => {{ const r = b.parseResponse(Buffer.from({literal}, 'latin1')); return r && "
        "{ status: r.status, headers: r.headers, body: r.body.toString('latin1'), "
        "keepAlive: r.keepAlive, size: r.size }; })()"
    )


def test_parse_response_with_a_length_and_what_follows_it() -> None:
    raw = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-A: b\r\n\r\nokHTTP/1.1 200 OK\r\n"
    assert parsed(raw) == {
        "status": 202,
        "headers": {"content-length": "2", "x-a": "b"},
        "body": "ok",
        "keepAlive": True,
        "size": raw.index(b"HTTP/1.1 200"),  # the next pipelined response starts here
    }


def test_parse_response_chunked_and_closing() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    raw += b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    result = parsed(raw)
    assert isinstance(result, dict)
    assert (result["body"], result["keepAlive"], result["size"]) == ("abcde", False, len(raw))


@pytest.mark.parametrize(
    "raw",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"],
)
def test_parse_response_waits_for_the_whole_message(raw: bytes) -> None:
    assert parsed(raw) is None
