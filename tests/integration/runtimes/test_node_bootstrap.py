"""The Node.js bootstrap against a stub Runtime API: the handler contract of lambda-compat §2."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from runtime_stub import Launcher, StubRuntimeApi, sent_after_first_event

ECHO = {
    "index.js": "exports.handler = async (event) => ({ event, trace: process.env._X_AMZN_TRACE_ID || null });"
}


def error_body(posted: object) -> dict[str, object]:
    body = posted.json()  # type: ignore[attr-defined]
    assert isinstance(body, dict)
    return body


async def test_async_handler_round_trips_and_keeps_serving(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    await launch.node(ECHO, "index.handler")

    first = await stub_api.call({"n": 1})
    second = await stub_api.call("two")

    assert first.kind == "response" and first.content_type == "application/json"
    assert first.json() == {"event": {"n": 1}, "trace": None}
    assert second.json() == {"event": "two", "trace": None}
    await stub_api.wait_for_next_calls(3)


async def test_async_rejection_error_shape(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "exports.handler = async () => { throw new TypeError('bad thing'); };\n"
    runtime = await launch.node({"index.js": code}, "index.handler")

    request_id = stub_api.invoke({})
    posted = await stub_api.result(request_id)

    assert posted.kind == "error"
    body = error_body(posted)
    assert list(body) == ["errorType", "errorMessage", "trace"]
    assert body["errorType"] == "TypeError"
    assert body["errorMessage"] == "bad thing"
    trace = body["trace"]
    assert isinstance(trace, list)
    assert trace[0] == "TypeError: bad thing" and "index.js" in trace[1]
    line = await runtime.wait_for_line("Invoke Error")
    assert f"\t{request_id}\tERROR\tInvoke Error" in line
    await stub_api.wait_for_next_calls(2)  # an error does not end the runtime


async def test_non_error_values_use_typeof(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "exports.handler = (event, context, callback) => callback('plain failure');\n"
    await launch.node({"index.js": code}, "index.handler")

    body = error_body(await stub_api.call({}))

    assert body == {"errorType": "string", "errorMessage": "plain failure", "trace": []}


async def test_sync_throw_is_an_error(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "exports.handler = (event, context, callback) => { throw new Error('sync'); };\n"
    await launch.node({"index.js": code}, "index.handler")

    body = error_body(await stub_api.call({}))

    assert body["errorType"] == "Error" and body["errorMessage"] == "sync"


CALLBACK_WAITS = """
exports.handler = (event, context, callback) => {
  if (event.wait === false) context.callbackWaitsForEmptyEventLoop = false;
  const result = { timerFired: false, defaultWaits: event.defaultWaits };
  setTimeout(() => { result.timerFired = true; }, 50);
  callback(null, result);  // serialised when the response is sent, so it shows when that was
};
"""


async def test_callback_waits_for_empty_event_loop_by_default(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    code = CALLBACK_WAITS.replace("event.defaultWaits", "context.callbackWaitsForEmptyEventLoop")
    await launch.node({"index.js": code}, "index.handler")

    posted = await stub_api.call({})

    assert posted.json() == {"timerFired": True, "defaultWaits": True}


async def test_callback_responds_at_once_when_not_waiting(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    await launch.node({"index.js": CALLBACK_WAITS}, "index.handler")

    posted = await stub_api.call({"wait": False, "defaultWaits": None})
    after = await stub_api.call({"wait": False, "defaultWaits": None})

    assert posted.json() == {"timerFired": False, "defaultWaits": None}
    assert after.kind == "response"  # the pending timer did not disturb the next invocation


@pytest.mark.parametrize(
    ("code", "kind", "expected"),
    [
        ("context.succeed({ ok: 1 }); context.fail(new Error('late'));", "response", {"ok": 1}),
        ("context.fail(new Error('nope')); context.succeed(1);", "error", "nope"),
        ("context.done(null, 'done-ok'); callback(new Error('late'));", "response", "done-ok"),
        ("context.done(new RangeError('done-bad'));", "error", "done-bad"),
        ("context.fail();", "error", "handled"),
    ],
    ids=["succeed-first", "fail-first", "done-ok", "done-error", "fail-empty"],
)
async def test_legacy_context_completion_first_call_wins(
    stub_api: StubRuntimeApi, launch: Launcher, code: str, kind: str, expected: object
) -> None:
    await launch.node(
        {"index.js": f"exports.handler = (event, context, callback) => {{ {code} }};\n"}, "index.handler"
    )

    posted = await stub_api.call({})
    second = await stub_api.call({})  # no stray post for the first invocation broke the loop

    assert posted.kind == kind
    if kind == "response":
        assert posted.json() == expected
    else:
        assert error_body(posted)["errorMessage"] == expected
    assert second.kind == kind


async def test_sync_handler_that_never_calls_back_returns_null(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    await launch.node({"index.js": "exports.handler = (event, context, callback) => {};\n"}, "index.handler")

    posted = await stub_api.call({})

    assert posted.kind == "response" and posted.body == b"null"


async def test_async_handler_that_never_settles_fails(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    await launch.node({"index.js": "exports.handler = async () => new Promise(() => {});\n"}, "index.handler")

    posted = await stub_api.call({})

    assert posted.kind == "error"
    assert error_body(posted)["errorType"] == "Runtime.NodeJsExit"


async def test_undefined_result_is_null(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    await launch.node({"index.js": "exports.handler = async () => undefined;\n"}, "index.handler")

    posted = await stub_api.call({})

    assert posted.body == b"null"


async def test_unstringifiable_result_is_a_stringify_error(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    code = "exports.handler = async () => { const a = {}; a.self = a; return a; };\n"
    await launch.node({"index.js": code}, "index.handler")

    posted = await stub_api.call({})

    body = error_body(posted)
    assert posted.kind == "error"
    assert body["errorType"] == "Runtime.JSONStringifyError"
    assert body["errorMessage"] == "Unable to stringify response body"


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({}, "index.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'index'"),
        (
            {"index.js": "exports.other = 1;\n"},
            "index.handler",
            "Runtime.HandlerNotFound",
            "index.handler is undefined",
        ),
        (
            {"index.js": "exports.handler = 1;\n"},
            "index.handler",
            "Runtime.HandlerNotFound",
            "index.handler is not a",
        ),
        ({"index.js": ""}, "index", "Runtime.MalformedHandlerName", "Bad handler"),
        (
            {"index.js": ""},
            "../x/index.handler",
            "Runtime.MalformedHandlerName",
            "'../x/index.handler' is not a valid",
        ),
        (
            {"index.js": "exports.handler = ;\n"},
            "index.handler",
            "Runtime.UserCodeSyntaxError",
            "SyntaxError: ",
        ),
        ({"index.js": "throw new RangeError('init boom');\n"}, "index.handler", "RangeError", "init boom"),
    ],
    ids=["import", "undefined", "not-function", "malformed", "relative", "syntax", "throws-at-load"],
)
async def test_init_errors(
    stub_api: StubRuntimeApi,
    launch: Launcher,
    files: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    runtime = await launch.node(files, handler)

    posted = await stub_api.init_error
    code = await runtime.wait_exit()

    assert code != 0
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == error_type
    body = error_body(posted)
    assert body["errorType"] == error_type
    assert str(body["errorMessage"]).startswith(message)
    assert isinstance(body["trace"], list)
    assert stub_api.next_calls == 0


async def test_context_object(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = """
exports.handler = async (event, context) => ({
  functionName: context.functionName, functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn, memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId, logGroupName: context.logGroupName,
  logStreamName: context.logStreamName, identity: context.identity || null,
  clientContext: context.clientContext || null, tenantId: context.tenantId || null,
  remaining: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop, trace: process.env._X_AMZN_TRACE_ID || null,
});
"""
    await launch.node({"index.js": code}, "index.handler")
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"

    posted = await stub_api.call(
        {},
        request_id="req-ctx",
        deadline_ms=int(time.time() * 1000) + 5000,
        headers={
            "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "p"}',
            "Lambda-Runtime-Client-Context": '{"client": {"app_title": "T"}, "Custom": {"a": 1}}',
            "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
            "Lambda-Runtime-Trace-Id": trace,
        },
    )
    untraced = await stub_api.call({})

    values = error_body(posted)
    remaining = values.pop("remaining")
    assert isinstance(remaining, int) and 3000 < remaining <= 5000
    assert values == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memoryLimitInMB": "256",
        "awsRequestId": "req-ctx",
        "logGroupName": "/aws/lambda/fn",
        "logStreamName": "2026/01/01/[$LATEST]abc",
        "identity": {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "p"},
        "clientContext": {"client": {"app_title": "T"}, "Custom": {"a": 1}},
        "tenantId": "tenant-7",
        "waits": True,
        "trace": trace,
    }
    later = error_body(untraced)
    assert later["trace"] is None and later["identity"] is None


async def test_console_lines_are_prefixed(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    code = "exports.handler = async () => { console.log('hello %s', 'log'); console.warn('two\\nlines'); };"
    runtime = await launch.node({"index.js": code}, "index.handler")

    request_id = stub_api.invoke({})
    await stub_api.result(request_id)
    info = await runtime.wait_for_line("hello log")
    warn = await runtime.wait_for_line("two")

    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(rf"{iso}\t{request_id}\tINFO\thello log", info), info
    assert re.fullmatch(rf"{iso}\t{request_id}\tWARN\ttwo\rlines", warn), warn  # one record per call


async def test_nested_path_and_property_handler(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    files = {"lib/sub/mod.js": "exports.api = { v1: { handle: async (e) => `nested:${e}` } };\n"}
    await launch.node(files, "lib/sub/mod.api.v1.handle")

    posted = await stub_api.call("x")

    assert posted.json() == "nested:x"


@pytest.mark.parametrize(
    "files",
    [
        {"index.mjs": "export const handler = async (e) => ({ esm: e });\n"},
        {
            "package.json": '{"type": "module"}',
            "index.js": "export const handler = async (e) => ({ esm: e });\n",
        },
    ],
    ids=["mjs", "type-module"],
)
async def test_es_module_handlers(stub_api: StubRuntimeApi, launch: Launcher, files: dict[str, str]) -> None:
    await launch.node(files, "index.handler")

    posted = await stub_api.call(7)

    assert posted.json() == {"esm": 7}


async def test_uncaught_exception_fails_invocation_and_exits(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    code = "exports.handler = (event, context, cb) => { setImmediate(() => { throw new Error('late'); }); };"
    runtime = await launch.node({"index.js": code}, "index.handler")

    posted = await stub_api.call({})
    code_ = await runtime.wait_exit()

    assert posted.kind == "error" and error_body(posted)["errorMessage"] == "late"
    assert code_ == 129


async def test_reconnects_when_the_api_closes_the_connection(
    stub_api: StubRuntimeApi, launch: Launcher
) -> None:
    stub_api.close_after_post = True
    await launch.node(ECHO, "index.handler")

    results = [await stub_api.call(n) for n in range(3)]

    assert [r.kind for r in results] == ["response"] * 3


async def test_refused_post_is_fatal(stub_api: StubRuntimeApi, launch: Launcher) -> None:
    stub_api.post_status = 403
    runtime = await launch.node(ECHO, "index.handler")

    await stub_api.call({})
    second = stub_api.invoke({})  # there for the taking: a runtime that went on would run it
    code = await runtime.wait_exit()

    assert code != 0
    assert "answered 403" in runtime.output
    assert not stub_api.posted[second].done()


async def test_the_result_and_the_next_request_go_out_together(tmp_path: Path) -> None:
    sent = await sent_after_first_event(tmp_path, lambda launch: launch.node(ECHO, "index.handler"))
    assert sent.startswith(b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\n")
