"""The Python bootstrap against a stub Runtime API: the handler contract of lambda-compat §2."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from runtime_stub import Launcher, StubRuntimeApi, sent_after_first_event

IMPORT_ERROR = "Runtime.ImportModuleError"
SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
ECHO = {
    "app.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    return {'event': event, 'trace': os.environ.get('_X_AMZN_TRACE_ID')}\n"
    )
}


async def test_success_round_trips_and_keeps_serving(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    await launch.python(ECHO, "app.handler")

    first = await stub_api.call({"n": 1})
    second = await stub_api.call([1, "two", None])

    assert first.kind == "response"
    assert first.content_type == "application/json"
    assert first.json() == {"event": {"n": 1}, "trace": None}
    assert second.json() == {"event": [1, "two", None], "trace": None}
    await stub_api.wait_for_next_calls(3)  # went straight back for the next event after each post


async def test_none_result_is_json_null(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    await launch.python({"app.py": "def handler(event, context):\n    return None\n"}, "app.handler")

    posted = await stub_api.call({})

    assert posted.body == b"null"


async def test_handler_exception_shape(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "def helper():\n    raise ValueError('bad thing')\n\ndef err(event, context):\n    helper()\n"
    runtime = await launch.python({"app.py": code}, "app.err")

    request_id = stub_api.invoke({})
    posted = await stub_api.result(request_id)

    assert posted.kind == "error"
    body = posted.json()
    assert isinstance(body, dict)
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorMessage"] == "bad thing"
    assert body["errorType"] == "ValueError"
    assert body["requestId"] == request_id
    trace = body["stackTrace"]
    assert len(trace) == 2, trace  # the user's two frames, none of the bootstrap's
    assert trace[0].startswith('  File "') and 'app.py", line 5, in err\n    helper()\n' in trace[0]
    assert "line 2, in helper\n    raise ValueError('bad thing')\n" in trace[1]
    assert "bootstrap" not in "".join(trace)
    assert "Lambda-Runtime-Function-XRay-Error-Cause" in posted.headers
    await runtime.wait_for_line("[ERROR] ValueError: bad thing")
    await stub_api.wait_for_next_calls(2)  # a handler exception does not end the runtime


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({}, "missing.handler", IMPORT_ERROR, "Unable to import module 'missing': No module named 'missing'"),
        (
            {"app.py": "x = 1\n"},
            "app.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'app'",
        ),
        (
            {"app.py": "x = 1\n"},
            "app",
            "Runtime.MalformedHandlerName",
            "Bad handler 'app': not enough values",
        ),
        ({"app.py": "def handler(:\n"}, "app.handler", SYNTAX_ERROR, "Syntax error in module 'app': "),
        ({}, "sys.handler", "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler"),
        ({"app.py": "raise KeyError('boom')\n"}, "app.handler", "KeyError", "'boom'"),
    ],
    ids=["import", "not-found", "malformed", "syntax", "builtin", "raises-at-import"],
)
async def test_init_errors(
    stub_api: StubRuntimeApi,
    launch: Launcher,
    files: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    runtime = await launch.python(files, handler)

    posted = await stub_api.init_error
    code = await runtime.wait_exit()

    assert code == 1
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == error_type
    body = posted.json()
    assert isinstance(body, dict)
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message)
    assert body["requestId"] == ""
    assert stub_api.next_calls == 0  # never asked for an event


async def test_context_object(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = (
        "def handler(event, context):\n"
        "    cc = context.client_context\n"
        "    return {\n"
        "        'request_id': context.aws_request_id, 'arn': context.invoked_function_arn,\n"
        "        'name': context.function_name, 'version': context.function_version,\n"
        "        'memory': context.memory_limit_in_mb, 'group': context.log_group_name,\n"
        "        'stream': context.log_stream_name, 'remaining': context.get_remaining_time_in_millis(),\n"
        "        'identity': [context.identity.cognito_identity_id,\n"
        "                     context.identity.cognito_identity_pool_id],\n"
        "        'client_context': None if cc is None else [cc.custom, cc.env, cc.client.app_title],\n"
        "        'tenant': context.tenant_id,\n"
        "    }\n"
    )
    await launch.python({"app.py": code}, "app.handler")

    identity = '{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}'
    client_context = '{"custom": {"a": 1}, "env": {"platform": "x"}, "client": {"app_title": "T"}}'
    with_headers = await stub_api.call(
        {},
        request_id="req-ctx",
        deadline_ms=int(time.time() * 1000) + 5000,
        headers={
            "Lambda-Runtime-Cognito-Identity": identity,
            "Lambda-Runtime-Client-Context": client_context,
            "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
        },
    )
    past_deadline = await stub_api.call({}, deadline_ms=int(time.time() * 1000) - 1000)

    values = with_headers.json()
    assert isinstance(values, dict)
    remaining = values.pop("remaining")
    assert 3000 < remaining <= 5000
    assert values == {
        "request_id": "req-ctx",
        "arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "name": "fn",
        "version": "$LATEST",
        "memory": "256",  # the raw env string, as awslambdaric
        "group": "/aws/lambda/fn",
        "stream": "2026/01/01/[$LATEST]abc",
        "identity": ["id-1", "pool-1"],
        "client_context": [{"a": 1}, {"platform": "x"}, "T"],
        "tenant": "tenant-7",
    }
    later = past_deadline.json()
    assert isinstance(later, dict)
    assert later["remaining"] == 0
    assert later["identity"] == [None, None] and later["client_context"] is None


async def test_bad_client_context_header_is_a_context_unmarshal_error(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    await launch.python(ECHO, "app.handler")

    posted = await stub_api.call({}, headers={"Lambda-Runtime-Client-Context": "{not json"})

    body = posted.json()
    assert posted.kind == "error" and isinstance(body, dict)
    assert body["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert body["errorMessage"].startswith("Unable to parse Client Context JSON: ")


async def test_trace_id_env_set_per_invocation_and_cleared(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    await launch.python(ECHO, "app.handler")
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    traced = await stub_api.call({}, headers={"Lambda-Runtime-Trace-Id": trace})
    untraced = await stub_api.call({})

    assert traced.json() == {"event": {}, "trace": trace}
    assert untraced.json() == {"event": {}, "trace": None}


async def test_bytes_result_is_sent_raw(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "def handler(event, context):\n    return b'\\x00\\xffraw'\n"
    await launch.python({"app.py": code}, "app.handler")

    posted = await stub_api.call({})

    assert posted.kind == "response"
    assert posted.body == b"\x00\xffraw"
    assert posted.content_type == "application/unknown"


async def test_decimal_results_are_numbers(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = (
        "from decimal import Decimal\ndef handler(event, context):\n    return [Decimal(3), Decimal('1.5')]\n"
    )
    await launch.python({"app.py": code}, "app.handler")

    posted = await stub_api.call({})

    assert posted.json() == [3, 1.5]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def handler(event, context):\n    return object()\n", "Object of type object is not"),
        ("async def handler(event, context):\n    return 1\n", "Object of type coroutine is not"),
    ],
    ids=["object", "async-def"],
)
async def test_unserialisable_result_is_a_marshal_error(
    stub_api: StubRuntimeApi, launch: Launcher, code: str, message: str
) -> None:
    await launch.python({"app.py": code}, "app.handler")

    posted = await stub_api.call({})

    body = posted.json()
    assert posted.kind == "error" and isinstance(body, dict)
    assert body["errorType"] == "Runtime.MarshalError"
    assert body["errorMessage"] == f"Unable to marshal response: {message} JSON serializable"
    assert body["stackTrace"] == []


async def test_non_json_event_reaches_handler_as_bytes(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "def handler(event, context):\n    return {'type': type(event).__name__, 'text': event.decode()}\n"
    await launch.python({"app.py": code}, "app.handler")

    posted = await stub_api.call(raw=b"plain text", content_type="text/plain")

    assert posted.json() == {"type": "bytes", "text": "plain text"}


async def test_invalid_json_event_is_an_unmarshal_error(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    await launch.python(ECHO, "app.handler")

    posted = await stub_api.call(raw=b"{nope")

    body = posted.json()
    assert isinstance(body, dict)
    assert body["errorType"] == "Runtime.UnmarshalError"
    assert body["errorMessage"].startswith("Unable to unmarshal input: ")


async def test_logging_and_print_reach_stdout_formatted(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = (
        "import logging\n"
        "logger = logging.getLogger()\n"
        "logger.setLevel(logging.INFO)\n"
        "def handler(event, context):\n"
        "    print('printed', end='')\n"  # no newline: still flushed at once
        "    logger.info('hello %s', 'log')\n"
        "    context.log('via-context\\n')\n"
        "    return 1\n"
    )
    runtime = await launch.python({"app.py": code}, "app.handler")

    request_id = stub_api.invoke({})
    await stub_api.result(request_id)
    line = await runtime.wait_for_line("hello log")

    assert re.fullmatch(
        rf"(printed)?\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{request_id}\thello log", line
    ), line
    await runtime.wait_for_line("via-context")
    await runtime.wait_for_line("printed")


async def test_nested_module_path_handler(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/mod.py": "def fn(event, context):\n    return __name__\n",
    }
    await launch.python(files, "pkg/sub/mod.fn")

    posted = await stub_api.call({})

    assert posted.json() == "pkg.sub.mod"


async def test_handler_argument_overrides_env_handler(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    """`_HANDLER` is used when no argument is given; the task root is on sys.path and is the cwd."""
    code = "import os\ndef handler(event, context):\n    return os.path.basename(os.getcwd())\n"
    runtime = await launch.python({"app.py": code}, "app.handler")

    posted = await stub_api.call({})

    assert posted.json() == "task0"
    assert runtime.process.returncode is None


async def test_reconnects_when_the_api_closes_the_connection(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    stub_api.close_after_post = True
    await launch.python(ECHO, "app.handler")

    results = [await stub_api.call(n) for n in range(3)]

    assert [r.kind for r in results] == ["response"] * 3


async def test_refused_post_is_fatal(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    stub_api.post_status = 403
    runtime = await launch.python(ECHO, "app.handler")

    await stub_api.call({})
    second = stub_api.invoke({})  # there for the taking: a runtime that went on would run it
    code = await runtime.wait_exit()

    assert code != 0
    assert "answered 403" in runtime.output
    assert not stub_api.posted[second].done()


async def test_missing_runtime_api_address_exits(launch: Launcher) -> None:
    runtime = await launch.python(ECHO, "app.handler", AWS_LAMBDA_RUNTIME_API="")

    assert await runtime.wait_exit() == 1
    assert "AWS_LAMBDA_RUNTIME_API is not set" in runtime.output


async def test_the_result_and_the_next_request_go_out_together(tmp_path: Path) -> None:
    sent = await sent_after_first_event(tmp_path, lambda launch: launch.python(ECHO, "app.handler"))
    assert sent.startswith(b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\n")
    assert b'{"event": {"n": 1}, "trace": null}' in sent
