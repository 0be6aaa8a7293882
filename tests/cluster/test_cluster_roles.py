"""The three server roles: migrate, controller and gateway as separate processes on one Postgres."""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cluster_harness import Cluster, cluster_database, running_cluster

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    with cluster_database(postgres_url) as url:
        yield url


def test_migrate_is_idempotent_and_safe_to_run_concurrently(tmp_path: Path, database: str) -> None:
    cluster = Cluster(tmp_path, database)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: cluster.migrate(), range(3)))
    assert [run.returncode for run in runs] == [0, 0, 0], [run.stderr for run in runs]
    again = cluster.migrate()
    assert again.returncode == 0
    assert "the metadata store is at revision" in again.stdout


def test_a_gateway_and_a_controller_serve_a_function_and_the_controller_drains(
    tmp_path: Path, database: str, docker_images: None
) -> None:
    with running_cluster(tmp_path, database) as cluster:
        node = cluster.controller("node-a")
        gateway = cluster.gateway("gw-1")
        cluster.wait_until(
            lambda: requests.get(gateway.url + "/readyz", timeout=5).status_code == 200, what="gateway ready"
        )
        cluster.fnctl(gateway, "deploy", str(REPO / "examples" / "hello-python"))
        response = cluster.invoke(gateway, "hello", {"pathParameters": {"name": "cluster"}})
        assert response.status_code == 200, response.text
        assert "Hello, cluster!" in response.json()["body"]

        nodes = cluster.fnctl(gateway, "nodes").stdout.splitlines()
        assert nodes[1].split()[:2] == ["node-a", "alive"]
        tasks = cluster.fnctl(gateway, "tasks").stdout.splitlines()
        assert tasks[0].split()[0] == "NODE" and tasks[1].split()[0] == "node-a"
        assert "START RequestId" in cluster.fnctl(gateway, "logs", "hello").stdout

        node.signal(signal.SIGTERM)
        assert node.wait(60) == 0, node.text()
        assert "draining" in node.text() and "deregistered" in node.text()
        cluster.wait_until(
            lambda: requests.get(gateway.url + "/readyz", timeout=5).status_code == 503,
            what="gateway not ready without a controller",
        )
        refused = cluster.invoke(gateway, "hello", {})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert "no controller is available" in refused.json()["message"]
        assert "no controller nodes registered" in cluster.fnctl(gateway, "nodes").stdout


def test_the_node_api_refuses_a_wrong_cluster_secret(
    tmp_path: Path, database: str, docker_images: None
) -> None:
    with running_cluster(tmp_path, database) as cluster:
        node = cluster.controller("node-a")
        assert requests.get(node.url + "/healthz", timeout=5).status_code == 200  # probes need no secret
        for headers in ({}, {"Authorization": "Bearer not-the-secret-at-all"}):
            refused = requests.post(
                node.url + "/internal/v1/invoke",
                data=b"{}",
                headers={**headers, "fnplat-function": "x", "fnplat-version": "1"},
                timeout=5,
            )
            assert refused.status_code == 401
        assert requests.get(node.url + "/internal/v1/tasks", timeout=5).status_code == 401
        cluster.wait_until(
            lambda: "wrong or missing cluster secret" in node.text(), what="the refusal logged"
        )
