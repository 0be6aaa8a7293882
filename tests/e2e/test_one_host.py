"""End to end on one host: `fnctl up`, `fnctl deploy` of every runtime, calls through routes and
the Invoke API, limits, errors and logs — against the real Docker engine."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from e2e_platform import Platform

from fnplat.spec import load_spec

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = Path(__file__).parent / "functions"


def deploy(platform: Platform, directory: Path) -> dict[str, object]:
    platform.fnctl("deploy", str(directory))
    name = load_spec(directory).name
    response = requests.get(f"{platform.url}/v1/functions/{name}", headers=platform.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def first_route_url(described: dict[str, object], **params: str) -> str:
    routes = described["routes"]
    assert isinstance(routes, list) and routes, described
    url = str(routes[0]["url"])
    for key, value in params.items():
        url = url.replace("{" + key + "}", value).replace("{" + key + "+}", value)
    return url


def test_admin_key_is_stored_private_and_printed_once(platform: Platform) -> None:
    key_file = platform.data_dir / "admin-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert platform.admin_key.startswith("fnp_")
    assert sum(platform.admin_key in line for line in platform.output) == 1


@pytest.mark.parametrize("example", ["hello-python", "hello-node", "hello-provided", "hello-image"])
def test_examples_deploy_and_answer_on_their_route_and_the_invoke_api(
    platform: Platform, example: str
) -> None:
    described = deploy(platform, REPO / "examples" / example)
    url = first_route_url(described, name="world")
    response = requests.get(url, headers=platform.headers(), timeout=60)
    assert response.status_code == 200, response.text
    assert "world" in response.text

    invoked = platform.invoke(str(described["name"]), {"pathParameters": {"name": "there"}})
    assert invoked.status_code == 200, invoked.text
    assert invoked.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert "X-Amz-Function-Error" not in invoked.headers


def test_vendored_binary_dependency_runs_in_the_task(platform: Platform) -> None:
    described = deploy(platform, REPO / "examples" / "deps-python")
    response = requests.post(
        first_route_url(described), data="a: 1\nb: [x, y]\n", headers=platform.headers(), timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"document": {"a": 1, "b": ["x", "y"]}, "libyaml": True}


def test_cli_invoke_prints_the_result_and_fails_on_function_errors(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    ok = platform.fnctl("invoke", "py-errors", "--payload", '{"action": "context"}')
    result = json.loads(ok.stdout)
    assert result["function_name"] == "py-errors"
    assert result["memory_limit_in_mb"] == "128"
    assert 0 < result["remaining_ms"] <= 2000
    assert result["greeting"] == "hi"
    assert result["uid"] != 0

    failed = platform.fnctl("invoke", "py-errors", "--payload", '{"action": "raise"}', check=False)
    assert failed.returncode == 1
    assert "ValueError" in failed.stdout + failed.stderr


def test_function_error_is_200_with_the_unhandled_header(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    response = platform.invoke("py-errors", {"action": "raise"})
    assert response.status_code == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    body = response.json()
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad thing"
    assert isinstance(body["stackTrace"], list)


def test_route_function_error_is_502(platform: Platform) -> None:
    described = deploy(platform, FUNCTIONS / "py-errors")
    response = requests.post(
        first_route_url(described, action="raise"), headers=platform.headers(), timeout=30
    )
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}


def test_timeout_kills_the_task_and_names_the_limit_then_the_function_recovers(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    response = platform.invoke("py-errors", {"action": "sleep", "seconds": 30})
    assert response.status_code == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert "Task timed out after 2.00 seconds" in response.json()["errorMessage"]
    again = platform.invoke("py-errors", {"action": "context"})
    assert again.status_code == 200 and "X-Amz-Function-Error" not in again.headers


def test_out_of_memory_is_a_typed_error_and_the_task_is_replaced(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    response = platform.invoke("py-errors", {"action": "oom"})
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert response.json()["errorType"] == "Runtime.OutOfMemory"
    assert "128 MB" in response.json()["errorMessage"]
    again = platform.invoke("py-errors", {"action": "context"})
    assert "X-Amz-Function-Error" not in again.headers


def test_crash_is_an_exit_error(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    response = platform.invoke("py-errors", {"action": "exit"})
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert response.json()["errorType"] == "Runtime.ExitError"


def test_missing_handler_module_is_an_import_error(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-bad-handler")
    response = platform.invoke("py-bad-handler", {})
    assert response.status_code == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert response.json()["errorType"] == "Runtime.ImportModuleError"
    assert "missing_module" in response.json()["errorMessage"]


def test_warm_task_is_reused_for_sequential_calls(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    ids = set()
    for _ in range(5):
        response = platform.invoke("py-errors", {"action": "echo"})
        assert response.status_code == 200
    tasks = requests.get(f"{platform.url}/v1/tasks", headers=platform.headers(), timeout=30).json()["tasks"]
    ids = {t["task_id"] for t in tasks if t["function"] == "py-errors"}
    assert len(ids) == 1


def test_concurrency_limit_throttles_with_429(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    # The e2e platform runs with FNPLAT_CONCURRENCY=4 and a 0.5 s bounded wait.
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(
            pool.map(lambda _: platform.invoke("py-errors", {"action": "hold", "seconds": 1.5}), range(10))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 4
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled, statuses
    assert throttled[0].json()["Type"] == "User"
    assert "TooManyRequestsException" in throttled[0].headers.get("x-amzn-ErrorType", "")


def test_logs_show_start_end_report_and_function_output(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    response = platform.invoke("py-errors", {"action": "logged-line"})
    request_id = response.headers["x-amzn-RequestId"]
    logs = platform.fnctl("logs", "py-errors", "--request-id", request_id).stdout
    assert f"START RequestId: {request_id}" in logs
    assert f"END RequestId: {request_id}" in logs
    assert f"REPORT RequestId: {request_id}" in logs
    assert "Billed Duration:" in logs and "Memory Size: 128 MB" in logs
    assert "echo logged-line" in logs


def test_keys_missing_wrong_and_invoke_scope(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    url = f"{platform.url}/2015-03-31/functions/py-errors/invocations"
    assert requests.post(url, json={}, timeout=30).status_code == 401
    assert requests.post(url, json={}, headers={"x-api-key": "fnp_nope_nope"}, timeout=30).status_code == 403

    created = platform.fnctl("keys", "create", "ci", "--scope", "invoke").stdout
    key = next(word for word in created.split() if word.startswith("fnp_"))
    ok = requests.post(url, json={"action": "echo"}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert ok.status_code == 200
    management = requests.get(f"{platform.url}/v1/functions", headers={"x-api-key": key}, timeout=30)
    assert management.status_code == 403


def test_bad_payloads_are_rejected_before_anything_runs(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    url = f"{platform.url}/2015-03-31/functions/py-errors/invocations"
    bad_json = requests.post(url, data=b"{nope", headers=platform.headers(), timeout=30)
    assert bad_json.status_code == 400
    assert bad_json.json()["Type"] == "User"
    too_big = requests.post(
        url, data=b'"' + b"x" * (6 * 1024 * 1024) + b'"', headers=platform.headers(), timeout=60
    )
    assert too_big.status_code == 413
    unknown = requests.post(
        f"{platform.url}/2015-03-31/functions/nope/invocations",
        json={},
        headers=platform.headers(),
        timeout=30,
    )
    assert unknown.status_code == 404
    assert (
        requests.get(f"{platform.url}/no/such/route", headers=platform.headers(), timeout=30).status_code
        == 404
    )


def test_metrics_and_health(platform: Platform) -> None:
    assert requests.get(f"{platform.url}/healthz", timeout=30).json() == {"status": "ok"}
    deploy(platform, FUNCTIONS / "py-errors")
    platform.invoke("py-errors", {"action": "echo"})
    text = requests.get(f"{platform.url}/metrics", headers=platform.headers(), timeout=30).text
    assert 'fnplat_invocations_total{function="py-errors",outcome="success"}' in text
    assert "fnplat_http_requests_total" in text


def test_orphans_of_a_killed_platform_are_removed_on_restart(platform: Platform) -> None:
    deploy(platform, FUNCTIONS / "py-errors")
    platform.invoke("py-errors", {"action": "echo"})
    label = "fnplat.managed=true"

    def our_containers() -> set[str]:
        out = subprocess.run(
            [
                "docker",
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                f"label={label}",
                "--filter",
                f"network={platform.env['FNPLAT_TASK_NETWORK']}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return set(out.split())

    before = our_containers()
    assert before
    platform.stop(signal.SIGKILL)  # no clean-up: its tasks are now orphans
    assert our_containers() == before
    platform.start()
    assert not (our_containers() & before)
    assert not any(platform.admin_key in line for line in platform.output)  # the key is shown only once
    response = platform.invoke("py-errors", {"action": "echo"})
    assert response.status_code == 200
