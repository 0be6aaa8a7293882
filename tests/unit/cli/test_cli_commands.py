"""fnctl commands against a scripted fnplat over real HTTP: requests sent, output, exit codes."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from pathlib import Path

from click.testing import CliRunner
from fake_fnplat import API_KEY, FakeFnplat, Recorded, Reply, error_reply, json_reply

from fnplat.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

DEPLOYED = {
    "name": "hello",
    "version": 3,
    "code_sha256": "ab" * 32,
    "runtime": "python3.11",
    "handler": "app.handler",
    "memory": 128,
    "timeout": 3,
    "routes": [
        {
            "method": "GET",
            "path": "/hello/{name}",
            "route_key": "GET /hello/{name}",
            "url": "http://127.0.0.1:8080/hello/{name}",
        }
    ],
    "invoke_url": "http://127.0.0.1:8080/2015-03-31/functions/hello/invocations",
}


# ------------------------------------------------------------------------ deploy


def test_deploy_uploads_the_packaged_zip_and_prints_version_routes_and_invoke(
    runner: CliRunner, fake: FakeFnplat
) -> None:
    fake.on("POST", "/v1/functions", json_reply(201, DEPLOYED))
    result = runner.invoke(cli, ["deploy", str(EXAMPLES / "hello-python")])
    assert result.exit_code == 0, result.output
    sent = fake.only("POST", "/v1/functions")
    assert sent.headers["content-type"] == "application/zip"
    assert sent.headers["x-api-key"] == API_KEY
    assert int(sent.headers["content-length"]) == len(sent.body)
    with zipfile.ZipFile(io.BytesIO(sent.body)) as archive:
        assert sorted(archive.namelist()) == ["app.py", "function.yaml"]
    assert "deployed hello version 3" in result.stdout
    assert "GET /hello/{name}  http://127.0.0.1:8080/hello/{name}" in result.stdout
    assert "fnctl invoke hello --payload '{}'" in result.stdout


def test_deploy_server_rejection_is_one_error_line(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on(
        "POST",
        "/v1/functions",
        error_reply(400, "InvalidParameterValueException", "function.yaml: unknown key 'memroy'"),
    )
    result = runner.invoke(cli, ["deploy", str(EXAMPLES / "hello-python")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "error: function.yaml: unknown key 'memroy'"
    assert "Traceback" not in result.output


def test_deploy_route_conflict_and_too_large(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on(
        "POST", "/v1/functions", error_reply(409, "ResourceConflictException", "route GET /x is taken by y")
    )
    result = runner.invoke(cli, ["deploy", str(EXAMPLES / "hello-python")])
    assert result.exit_code == 1 and "error: route GET /x is taken by y" in result.stderr
    fake.on("POST", "/v1/functions", Reply(413, b"request entity too large"))
    result = runner.invoke(cli, ["deploy", str(EXAMPLES / "hello-python")])
    assert result.exit_code == 1 and "error: request entity too large" in result.stderr


def test_deploy_invalid_spec_fails_before_any_upload(
    runner: CliRunner, fake: FakeFnplat, tmp_path: Path
) -> None:
    (tmp_path / "function.yaml").write_text(
        "name: x\nruntime: python3.11\nhandler: app.handler\nmemory: 64\n"
    )
    result = runner.invoke(cli, ["deploy", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        f"error: {tmp_path / 'function.yaml'}: memory must be an integer between 128 and 10240, got 64"
        in (result.stderr)
    )
    assert fake.requests == []


def test_deploy_missing_directory_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["deploy", str(tmp_path / "nope")])
    assert result.exit_code == 2


# ------------------------------------------------------------------------ invoke


def invoke_ok(request: Recorded) -> Reply:
    echoed = {"got": request.json(), "qualifier": request.query.get("Qualifier")}
    return json_reply(200, echoed, {"X-Amz-Executed-Version": "3", "x-amzn-RequestId": "req-1"})


def test_invoke_sends_payload_and_prints_result(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("POST", "/2015-03-31/functions/hello/invocations", invoke_ok)
    result = runner.invoke(cli, ["invoke", "hello", "--payload", '{"a": 1}', "--qualifier", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"got": {"a": 1}, "qualifier": "3"}
    sent = fake.only("POST", "/2015-03-31/functions/hello/invocations")
    assert sent.headers["x-amz-invocation-type"] == "RequestResponse"


def test_invoke_without_payload_sends_empty_event(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("POST", "/2015-03-31/functions/hello/invocations", invoke_ok)
    result = runner.invoke(cli, ["invoke", "hello"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["got"] == {}


def test_invoke_payload_from_stdin_and_file(runner: CliRunner, fake: FakeFnplat, tmp_path: Path) -> None:
    fake.on("POST", "/2015-03-31/functions/hello/invocations", invoke_ok)
    result = runner.invoke(cli, ["invoke", "hello", "--payload", "-"], input='{"from": "stdin"}')
    assert json.loads(result.stdout)["got"] == {"from": "stdin"}
    event = tmp_path / "event.json"
    event.write_text('{"from": "file"}')
    result = runner.invoke(cli, ["invoke", "hello", "--payload-file", str(event)])
    assert json.loads(result.stdout)["got"] == {"from": "file"}


def test_invoke_bad_payloads_fail_without_calling(
    runner: CliRunner, fake: FakeFnplat, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["invoke", "hello", "--payload", "{not json"])
    assert result.exit_code == 1 and "error: payload from --payload is not valid JSON" in result.stderr
    result = runner.invoke(cli, ["invoke", "hello", "--payload", "{}", "--payload-file", "x.json"])
    assert (
        result.exit_code == 1 and "error: give either --payload or --payload-file, not both" in result.stderr
    )
    result = runner.invoke(cli, ["invoke", "hello", "--payload-file", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "error: cannot read payload file" in result.stderr
    assert fake.requests == []


def test_invoke_function_error_prints_error_json_and_exits_1(runner: CliRunner, fake: FakeFnplat) -> None:
    error = {"errorMessage": "bad thing", "errorType": "ValueError", "stackTrace": []}
    fake.on(
        "POST",
        "/2015-03-31/functions/hello/invocations",
        json_reply(200, error, {"X-Amz-Function-Error": "Unhandled"}),
    )
    result = runner.invoke(cli, ["invoke", "hello"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errorType"] == "ValueError"
    assert "error: function hello failed (Unhandled)" in result.stderr


def test_invoke_unknown_function_and_throttle(runner: CliRunner, fake: FakeFnplat) -> None:
    result = runner.invoke(cli, ["invoke", "nope"])  # the fake answers 404 {"message": "Not Found"}
    assert result.exit_code == 1 and result.stderr.strip() == "error: Not Found"
    fake.on(
        "POST",
        "/2015-03-31/functions/busy/invocations",
        json_reply(
            429, {"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrent"}
        ),
    )
    result = runner.invoke(cli, ["invoke", "busy"])
    assert result.exit_code == 1 and result.stderr.strip() == "error: Rate Exceeded."


# ------------------------------------------------------------------------ listing commands


def test_ls(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on(
        "GET",
        "/v1/functions",
        json_reply(
            200,
            {
                "functions": [
                    {
                        "name": "hello",
                        "latest_version": 3,
                        "runtime": "python3.11",
                        "memory": 256,
                        "timeout": 5,
                        "updated_at": "2025-01-01T00:00:00Z",
                    }
                ]
            },
        ),
    )
    result = runner.invoke(cli, ["ls"])
    assert result.exit_code == 0
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["NAME", "VERSION", "RUNTIME", "MEMORY", "TIMEOUT", "UPDATED"]
    assert row.split() == ["hello", "3", "python3.11", "256", "5", "2025-01-01T00:00:00Z"]


def test_ls_empty(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("GET", "/v1/functions", json_reply(200, {"functions": []}))
    assert "no functions deployed" in runner.invoke(cli, ["ls"]).stdout


def test_describe(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on(
        "GET",
        "/v1/functions/hello",
        json_reply(
            200,
            {**DEPLOYED, "environment": {"GREETING": "Hi"}, "updated_at": "2025-01-01T00:00:00Z"},
        ),
    )
    result = runner.invoke(cli, ["describe", "hello"])
    assert result.exit_code == 0
    assert "memory:      128 MB" in result.stdout
    assert "GREETING=Hi" in result.stdout
    assert "GET /hello/{name}  http://127.0.0.1:8080/hello/{name}" in result.stdout


def test_describe_reveals_the_environment_only_when_asked(runner: CliRunner, fake: FakeFnplat) -> None:
    def reply(request: Recorded) -> Reply:
        revealed = request.query.get("reveal_environment") == "true"
        return json_reply(200, {**DEPLOYED, "environment": {"TOKEN": "abc" if revealed else "****"}})

    fake.on("GET", "/v1/functions/hello", reply)
    assert "TOKEN=****" in runner.invoke(cli, ["describe", "hello"]).stdout
    assert "reveal_environment" not in fake.requests[-1].query
    result = runner.invoke(cli, ["describe", "hello", "--show-environment"])
    assert result.exit_code == 0 and "TOKEN=abc" in result.stdout
    assert fake.requests[-1].query == {"reveal_environment": "true"}


def test_describe_unknown(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on(
        "GET", "/v1/functions/nope", error_reply(404, "ResourceNotFoundException", "Function not found: nope")
    )
    result = runner.invoke(cli, ["describe", "nope"])
    assert result.exit_code == 1 and result.stderr.strip() == "error: Function not found: nope"


def test_rm(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("DELETE", "/v1/functions/hello", Reply(204))
    result = runner.invoke(cli, ["rm", "hello"])
    assert result.exit_code == 0 and result.stdout.strip() == "removed hello"
    fake.only("DELETE", "/v1/functions/hello")


def test_routes_and_tasks(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on(
        "GET",
        "/v1/routes",
        json_reply(
            200,
            {
                "routes": [
                    {
                        "method": "GET",
                        "path": "/hello/{name}",
                        "route_key": "GET /hello/{name}",
                        "function": "hello",
                        "qualifier": "$LATEST",
                        "auth": "none",
                        "url": "http://127.0.0.1:8080/hello/{name}",
                    }
                ]
            },
        ),
    )
    fake.on(
        "GET",
        "/v1/tasks",
        json_reply(
            200,
            {
                "tasks": [
                    {
                        "task_id": "t-1",
                        "function": "hello",
                        "version": 3,
                        "state": "idle",
                        "container_id": "0123456789abcdef0123",
                        "ip": "172.31.252.5",
                        "started_at": "2025-01-01T00:00:00Z",
                        "invocations": 7,
                    }
                ]
            },
        ),
    )
    routes = runner.invoke(cli, ["routes"]).stdout.splitlines()
    assert routes[1].split() == [
        "GET",
        "/hello/{name}",
        "hello",
        "$LATEST",
        "none",
        "http://127.0.0.1:8080/hello/{name}",
    ]
    tasks = runner.invoke(cli, ["tasks"]).stdout.splitlines()
    assert len(tasks) == 2
    assert tasks[0].split()[0] == "NODE"
    assert tasks[1].split() == [
        "-",  # one host: the controller is in the platform's one process
        "t-1",
        "hello",
        "3",
        "idle",
        "0123456789ab",
        "172.31.252.5",
        "2025-01-01T00:00:00Z",
        "7",
    ]


def test_logs_with_filters(runner: CliRunner, fake: FakeFnplat) -> None:
    events = [
        {
            "timestamp": "2025-01-01T00:00:00.000Z",
            "request_id": "r1",
            "message": "START RequestId: r1 Version: 3\n",
        },
        {"timestamp": "2025-01-01T00:00:00.100Z", "request_id": "r1", "message": "hello from the function"},
    ]
    fake.on("GET", "/v1/functions/hello/logs", json_reply(200, {"events": events}))
    result = runner.invoke(cli, ["logs", "hello", "--limit", "5", "--request-id", "r1"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "2025-01-01T00:00:00.000Z  START RequestId: r1 Version: 3",
        "2025-01-01T00:00:00.100Z  hello from the function",
    ]
    assert fake.only("GET", "/v1/functions/hello/logs").query == {"limit": "5", "request_id": "r1"}


def test_logs_limit_must_be_positive(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["logs", "hello", "--limit", "0"]).exit_code == 2


# ------------------------------------------------------------------------ keys


def test_keys_create_prints_the_key_once(runner: CliRunner, fake: FakeFnplat) -> None:
    full_key = "fnp_k123_s3cr3t"
    fake.on(
        "POST",
        "/v1/keys",
        json_reply(
            201,
            {"key_id": "k123", "name": "ci", "scope": "invoke", "created_at": "2025-01-01", "key": full_key},
        ),
    )
    result = runner.invoke(cli, ["keys", "create", "ci"])
    assert result.exit_code == 0
    assert result.stdout == full_key + "\n"  # only the key on stdout: `KEY=$(fnctl keys create ci)`
    assert result.stdout.count(full_key) == 1 and full_key not in result.stderr
    assert "cannot be shown again" in result.stderr
    assert fake.only("POST", "/v1/keys").json() == {"name": "ci", "scope": "invoke"}


def test_keys_create_admin_scope_and_bad_scope(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("POST", "/v1/keys", json_reply(201, {"key_id": "k", "key": "fnp_k_x"}))
    assert runner.invoke(cli, ["keys", "create", "ops", "--scope", "admin"]).exit_code == 0
    assert fake.only("POST", "/v1/keys").json()["scope"] == "admin"
    assert runner.invoke(cli, ["keys", "create", "ops", "--scope", "root"]).exit_code == 2


def test_keys_ls_and_revoke(runner: CliRunner, fake: FakeFnplat) -> None:
    keys = [{"key_id": "k1", "name": "ci", "scope": "invoke", "created_at": "2025-01-01", "revoked": True}]
    fake.on("GET", "/v1/keys", json_reply(200, {"keys": keys}))
    fake.on("DELETE", "/v1/keys/k1", Reply(204))
    listing = runner.invoke(cli, ["keys", "ls"]).stdout.splitlines()
    assert listing[1].split() == ["k1", "ci", "invoke", "2025-01-01", "yes"]
    result = runner.invoke(cli, ["keys", "revoke", "k1"])
    assert result.exit_code == 0 and "revoked k1" in result.stdout
    fake.only("DELETE", "/v1/keys/k1")


# ------------------------------------------------------------------------ failures


def test_unreachable_server(runner: CliRunner, monkeypatch: object) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(cli, ["ls"], env={"FNCTL_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: cannot reach fnplat at http://127.0.0.1:{port}: is `fnctl up` running?"
    )


def test_auth_failures(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("GET", "/v1/functions", json_reply(401, {"message": "Unauthorized"}))
    result = runner.invoke(cli, ["ls"])
    assert result.exit_code == 1 and result.stderr.strip() == "error: Unauthorized"
    fake.on("GET", "/v1/functions", json_reply(403, {"message": "Forbidden"}))
    assert runner.invoke(cli, ["ls"]).stderr.strip() == "error: Forbidden"


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["invoke"]).exit_code == 2
    assert runner.invoke(cli, ["frobnicate"]).exit_code == 2
    assert runner.invoke(cli, ["init", "x", "--runtime", "java21"]).exit_code == 2


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    for command in (
        "init",
        "deploy",
        "invoke",
        "logs",
        "ls",
        "describe",
        "rm",
        "routes",
        "keys",
        "tasks",
        "up",
    ):
        assert f"  {command} " in result.stdout


def test_tasks_empty(runner: CliRunner, fake: FakeFnplat) -> None:
    fake.on("GET", "/v1/tasks", json_reply(200, {"tasks": []}))
    assert runner.invoke(cli, ["tasks"]).stdout.strip() == "no tasks running"
