"""The gateway application against a real SQLite store and a fake invoker (no Docker)."""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from aiohttp.test_utils import TestClient, TestServer

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.config import Settings
from fnplat.deployments import DeployService
from fnplat.domain import LogEvent
from fnplat.errors import TooManyRequests
from fnplat.gateway.app import init_app
from fnplat.gateway.deps import GatewayDeps
from fnplat.invocation import InvocationRequest, InvocationResult
from fnplat.journal import Journal
from fnplat.metrics import Metrics
from fnplat.recorder import Recorder
from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import SecretKeys, generate_key
from fnplat.security import generate_api_key
from fnplat.store import repository
from fnplat.store.db import make_engine, make_sessionmaker, transaction, upgrade_to_head
from fnplat.store.telemetry_writers import writer_for


@dataclass
class FakeInvoker:
    result: InvocationResult = field(default_factory=lambda: InvocationResult(payload=b'{"ok": true}'))
    throttle: bool = False
    requests: list[InvocationRequest] = field(default_factory=list)
    retired: list[tuple[str, int | None]] = field(default_factory=list)

    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        self.requests.append(request)
        if self.throttle:
            raise TooManyRequests("Rate Exceeded.")
        return self.result

    async def retire(self, function_name: str, keep_version: int | None = None) -> None:
        self.retired.append((function_name, keep_version))


@dataclass
class Harness:
    client: TestClient
    invoker: FakeInvoker
    admin_key: str
    deps: GatewayDeps

    @property
    def admin(self) -> dict[str, str]:
        return {"x-api-key": self.admin_key}

    async def deploy(
        self, files: dict[str, str | bytes], content_type: str = "application/zip"
    ) -> tuple[int, dict]:
        response = await self.client.post(
            "/v1/functions", data=make_zip(files), headers={**self.admin, "Content-Type": content_type}
        )
        return response.status, await response.json()

    def functions_in_store(self) -> list[str]:
        with transaction(self.deps.sessions) as session:
            return [f.name for f in repository.list_functions(session)]


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o100644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


SPEC = """
name: hello
runtime: python3.11
handler: app.handler
routes:
  - GET /hello/{name}
"""


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(data_dir=tmp_path, port=8080)
    db = make_engine(settings.db_url)
    upgrade_to_head(db)
    sessions = make_sessionmaker(db, EnvironmentCipher(SecretKeys(generate_key().encode(), (), "test")))
    presented, key = generate_api_key("admin", "admin", datetime.now(UTC))
    with transaction(sessions) as session:
        repository.add_api_key(session, key)
    catalog = Catalog()
    catalog.load([], [], [key])
    invoker = FakeInvoker()
    recorder = Recorder(writer_for(db, sessions), Journal(settings.journal_dir))

    async def build_image(context: str, tag: str) -> str:
        return "sha256:fake"

    deployer = DeployService(
        sessions,
        ArtifactStore(settings.artifacts_dir, settings.code_dir),
        catalog,
        build_image,
        invoker.retire,
    )
    deps = GatewayDeps(
        settings=settings,
        catalog=catalog,
        invoker=invoker,
        deployer=deployer,
        sessions=sessions,
        recorder=recorder,
        metrics=Metrics(),
        task_snapshot=lambda: [],
    )
    client = TestClient(TestServer(init_app(deps)))
    await client.start_server()
    try:
        yield Harness(client, invoker, presented, deps)
    finally:
        await client.close()
        await recorder.close()
        db.dispose()


async def test_deploy_creates_versions_moves_latest_and_retires_old_tasks(harness: Harness) -> None:
    status, body = await harness.deploy({"function.yaml": SPEC, "app.py": "def handler(e, c): return 1\n"})
    assert status == 201, body
    assert body["version"] == 1
    assert body["routes"][0]["route_key"] == "GET /hello/{name}"
    assert body["routes"][0]["url"].endswith("/hello/{name}")
    status, body = await harness.deploy({"function.yaml": SPEC, "app.py": "def handler(e, c): return 2\n"})
    assert body["version"] == 2
    assert harness.invoker.retired[-1] == ("hello", 2)
    listed = await (await harness.client.get("/v1/functions", headers=harness.admin)).json()
    assert [(f["name"], f["latest_version"]) for f in listed["functions"]] == [("hello", 2)]


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ({"function.yaml": SPEC + "memroy: 256\n", "app.py": ""}, 400, "memroy"),
        ({"function.yaml": SPEC.replace("python3.11", "cobol"), "app.py": ""}, 400, "cobol"),
        ({"function.yaml": SPEC.replace("name: hello", "name: 'bad name'"), "app.py": ""}, 400, "name"),
        ({"function.yaml": SPEC, "../evil.py": "x"}, 400, "evil"),
        ({"function.yaml": SPEC, "/etc/passwd": "x"}, 400, "passwd"),
        ({"app.py": "x"}, 400, "function.yaml"),
        ({"function.yaml": SPEC, "lib": "x", "lib/mod.py": "y"}, 400, "lib: is a file in the zip"),
        ({"function.yaml": SPEC, "lib/": "", "lib": "x"}, 400, "lib: duplicate entry"),
        ({"function.yaml": SPEC.replace(": hello", ": &n hello") + "environment: {N: *n}\n"}, 400, "aliases"),
        ({"function.yaml": SPEC + "#" * 70_000 + "\n", "app.py": ""}, 400, "over the 65536-byte limit"),
    ],
)
async def test_bad_deploys_get_clear_errors_and_write_nothing(
    harness: Harness, files: dict[str, str], status: int, message: str
) -> None:
    got_status, body = await harness.deploy(files)
    assert got_status == status, body
    assert message in body["message"]
    assert body["Type"] == "User"
    assert harness.functions_in_store() == []
    assert harness.deps.catalog.functions() == []


async def test_environment_values_are_masked_unless_revealed(harness: Harness) -> None:
    spec = SPEC + "environment:\n  DB_PASSWORD: hunter2-in-the-test\n  STAGE: prod\n"
    status, body = await harness.deploy({"function.yaml": spec, "app.py": ""})
    assert status == 201 and body["environment"] == {"DB_PASSWORD": "****", "STAGE": "****"}
    url = "/v1/functions/hello"
    described = await (await harness.client.get(url, headers=harness.admin)).json()
    assert described["environment"] == {"DB_PASSWORD": "****", "STAGE": "****"}
    for value in ("false", "0"):
        response = await harness.client.get(url, params={"reveal_environment": value}, headers=harness.admin)
        assert (await response.json())["environment"]["STAGE"] == "****"
    for value in ("true", "1", "TRUE"):
        response = await harness.client.get(url, params={"reveal_environment": value}, headers=harness.admin)
        revealed = (await response.json())["environment"]
        assert revealed == {"DB_PASSWORD": "hunter2-in-the-test", "STAGE": "prod"}
    response = await harness.client.get(url, params={"reveal_environment": "please"}, headers=harness.admin)
    assert response.status == 400 and "reveal_environment" in (await response.json())["message"]
    # Invocations get the real values (from memory), the store holds none of them.
    latest = harness.deps.catalog.latest("hello")
    assert latest is not None and latest.environment["DB_PASSWORD"] == "hunter2-in-the-test"
    with harness.deps.sessions() as session:
        row = session.execute(
            sqlalchemy.text("SELECT environment, environment_sealed FROM function_versions")
        ).one()
    assert "hunter2" not in str(row) and "STAGE" not in str(row)


async def test_deploy_reads_yaml_and_inspects_the_zip_off_the_event_loop(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fnplat import packaging

    threads: dict[str, int] = {}
    parse_spec, summarise_zip, open_zip = packaging.parse_spec, packaging.summarise_zip, packaging.open_zip

    def record(name: str, function: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            threads[name] = threading.get_ident()
            return function(*args, **kwargs)

        return recorded

    monkeypatch.setattr(packaging, "parse_spec", record("parse_spec", parse_spec))
    monkeypatch.setattr(packaging, "summarise_zip", record("summarise_zip", summarise_zip))
    monkeypatch.setattr(packaging, "open_zip", record("open_zip", open_zip))
    status, body = await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    assert status == 201, body
    assert set(threads) == {"parse_spec", "summarise_zip", "open_zip"}
    assert len(set(threads.values())) == 1  # one hop for all of it
    assert threading.get_ident() not in threads.values()


async def test_deploy_rejects_non_zip_bodies(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1/functions", data=b"not a zip", headers={**harness.admin, "Content-Type": "application/zip"}
    )
    assert response.status == 400
    response = await harness.client.post(
        "/v1/functions", data=b"{}", headers={**harness.admin, "Content-Type": "application/json"}
    )
    assert response.status == 415
    assert harness.functions_in_store() == []


async def test_route_taken_by_another_function_is_a_conflict(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    status, body = await harness.deploy(
        {"function.yaml": SPEC.replace("name: hello", "name: other"), "app.py": ""}
    )
    assert status == 409
    assert "hello" in body["message"]
    assert harness.functions_in_store() == ["hello"]


async def test_route_request_becomes_a_v2_event_and_the_result_is_mapped_back(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    harness.invoker.result = InvocationResult(
        payload=json.dumps(
            {"statusCode": 201, "headers": {"x-a": "b"}, "cookies": ["c=1"], "body": "made"}
        ).encode()
    )
    response = await harness.client.get("/hello/world?x=1&x=2", headers={**harness.admin, "Cookie": "k=v"})
    assert response.status == 201
    assert await response.text() == "made"
    assert response.headers["x-a"] == "b"
    assert response.headers.getall("Set-Cookie") == ["c=1"]
    event = json.loads(harness.invoker.requests[-1].payload)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /hello/{name}"
    assert event["pathParameters"] == {"name": "world"}
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["k=v"]
    assert "cookie" not in event["headers"]
    assert "x-api-key" in event["headers"]


async def test_result_without_status_code_is_inferred_as_json_200(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    harness.invoker.result = InvocationResult(payload=b'{"greeting": "hi"}')
    response = await harness.client.get("/hello/world", headers=harness.admin)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert await response.json() == {"greeting": "hi"}


async def test_route_errors(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    assert (await harness.client.get("/hello/world")).status == 401
    assert (await harness.client.get("/hello/world", headers={"x-api-key": "fnp_x_y"})).status == 403
    assert (await harness.client.get("/nope", headers=harness.admin)).status == 404
    harness.invoker.result = InvocationResult(
        payload=b'{"errorType": "ValueError"}', function_error="Unhandled"
    )
    response = await harness.client.get("/hello/world", headers=harness.admin)
    assert response.status == 502
    harness.invoker.result = InvocationResult(payload=b'{"statusCode": "nope"}')
    assert (await harness.client.get("/hello/world", headers=harness.admin)).status == 502
    harness.invoker.throttle = True
    response = await harness.client.get("/hello/world", headers=harness.admin)
    assert response.status == 429
    assert await response.json() == {"message": "Too Many Requests"}


async def test_auth_none_route_needs_no_key(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC + "auth: none\n", "app.py": ""})
    harness.invoker.result = InvocationResult(payload=b'"hi"')
    response = await harness.client.get("/hello/world")
    assert response.status == 200
    assert await response.text() == "hi"


async def test_invoke_api(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    url = "/2015-03-31/functions/hello/invocations"
    response = await harness.client.post(url, data=b'{"a": 1}', headers=harness.admin)
    assert response.status == 200
    assert response.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert harness.invoker.requests[-1].payload == b'{"a": 1}'
    assert harness.invoker.requests[-1].invoked_function_arn.endswith(":function:hello")

    harness.invoker.result = InvocationResult(
        payload=b'{"errorType": "ValueError"}', function_error="Unhandled"
    )
    response = await harness.client.post(url, data=b"{}", headers=harness.admin)
    assert response.status == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"

    response = await harness.client.post(url, data=b"{oops", headers=harness.admin)
    assert response.status == 400
    assert response.headers["x-amzn-ErrorType"].startswith("InvalidRequestContentException")

    response = await harness.client.post(
        url, data=b"{}", headers={**harness.admin, "X-Amz-Invocation-Type": "Event"}
    )
    assert response.status == 400
    response = await harness.client.post(
        "/2015-03-31/functions/nope/invocations", data=b"{}", headers=harness.admin
    )
    assert response.status == 404
    assert (await response.json())["Type"] == "User"
    response = await harness.client.post(url, data=b"x" * (6 * 1024 * 1024 + 1), headers=harness.admin)
    assert response.status == 413

    harness.invoker.throttle = True
    response = await harness.client.post(url, data=b"{}", headers=harness.admin)
    assert response.status == 429
    assert (await response.json())["Reason"]


async def test_client_context_reaches_the_runtime_as_one_line_of_json(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    url = "/2015-03-31/functions/hello/invocations"
    pretty = json.dumps({"custom": {"a": 1}, "env": {"platform": "x\ny"}}, indent=2)
    encoded = base64.b64encode(pretty.encode()).decode()
    headers = {**harness.admin, "X-Amz-Client-Context": encoded}
    response = await harness.client.post(url, data=b"{}", headers=headers)
    assert response.status == 200
    forwarded = harness.invoker.requests[-1].client_context
    assert forwarded is not None and "\n" not in forwarded  # it becomes a Runtime API header value
    assert json.loads(forwarded) == json.loads(pretty)
    for bad in ("not base64!", base64.b64encode(b"{not json").decode(), "A" * 3584):
        headers = {**harness.admin, "X-Amz-Client-Context": bad}
        response = await harness.client.post(url, data=b"{}", headers=headers)
        assert response.status == 400, bad


async def test_keys_are_shown_once_scoped_and_revocable(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1/keys", json={"name": "ci", "scope": "invoke"}, headers=harness.admin
    )
    assert response.status == 201
    created = await response.json()
    key = created["key"]
    listed = await (await harness.client.get("/v1/keys", headers=harness.admin)).json()
    assert key not in json.dumps(listed)
    assert {k["key_id"] for k in listed["keys"]} >= {created["key_id"]}

    assert (await harness.client.get("/v1/functions", headers={"x-api-key": key})).status == 403
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    url = "/2015-03-31/functions/hello/invocations"
    assert (await harness.client.post(url, data=b"{}", headers={"x-api-key": key})).status == 200

    assert (await harness.client.delete(f"/v1/keys/{created['key_id']}", headers=harness.admin)).status == 204
    assert (await harness.client.post(url, data=b"{}", headers={"x-api-key": key})).status == 403
    assert (await harness.client.delete("/v1/keys/nope", headers=harness.admin)).status == 404

    bad = await harness.client.post("/v1/keys", json={"name": "x", "scope": "root"}, headers=harness.admin)
    assert bad.status == 400


async def test_logs_and_delete(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    now = datetime.now(UTC)
    harness.deps.recorder.log(LogEvent("hello", "r1", now, "START RequestId: r1 Version: $LATEST"))
    harness.deps.recorder.log(LogEvent("hello", "r2", now, "START RequestId: r2 Version: $LATEST"))
    response = await harness.client.get("/v1/functions/hello/logs?request_id=r1", headers=harness.admin)
    events = (await response.json())["events"]
    assert [e["message"] for e in events] == ["START RequestId: r1 Version: $LATEST"]
    assert (await harness.client.get("/v1/functions/hello/logs?limit=x", headers=harness.admin)).status == 400

    assert (await harness.client.delete("/v1/functions/hello", headers=harness.admin)).status == 204
    assert harness.invoker.retired[-1] == ("hello", None)
    assert (await harness.client.get("/v1/functions/hello", headers=harness.admin)).status == 404
    assert (await harness.client.get("/hello/world", headers=harness.admin)).status == 404
    assert (await harness.client.delete("/v1/functions/hello", headers=harness.admin)).status == 404


async def test_health_needs_no_key_and_metrics_needs_one(harness: Harness) -> None:
    assert (await harness.client.get("/healthz")).status == 200
    assert (await harness.client.get("/metrics")).status == 401
    response = await harness.client.get("/metrics", headers=harness.admin)
    assert response.status == 200
    assert "fnplat_http_requests_total" in await response.text()


async def test_requests_are_counted_by_kind_and_status(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})  # management 201
    await harness.client.get("/hello/world", headers=harness.admin)  # route 200
    await harness.client.get("/hello/world")  # route 401
    await harness.client.post("/2015-03-31/functions/hello/invocations", data=b"{}", headers=harness.admin)
    await harness.client.get("/healthz")
    registry = harness.deps.metrics.registry

    def count(kind: str, status: str) -> float:
        return registry.get_sample_value("fnplat_http_requests_total", {"kind": kind, "status": status}) or 0

    assert count("management", "201") == 1
    assert (count("route", "200"), count("route", "401")) == (1, 1)
    assert (count("invoke", "200"), count("other", "200")) == (1, 1)
    observed = registry.get_sample_value("fnplat_http_request_duration_seconds_count", {"kind": "route"})
    assert observed == 2


async def test_warm_invocations_make_no_database_round_trip(harness: Harness) -> None:
    await harness.deploy({"function.yaml": SPEC, "app.py": ""})
    statements: list[str] = []
    engine = harness.deps.sessions.kw["bind"]

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            assert (await harness.client.get("/hello/world", headers=harness.admin)).status == 200
            response = await harness.client.post(
                "/2015-03-31/functions/hello/invocations", data=b"{}", headers=harness.admin
            )
            assert response.status == 200
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", count)
    assert statements == []
