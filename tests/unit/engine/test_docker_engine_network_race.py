"""Two controllers starting at once create the shared build network: the one that loses the race
(Docker answers 409, or 403 "pool overlaps" for the same subnet) takes the winner's network."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from fnplat.controller.docker_engine import DockerEngine
from fnplat.errors import EngineError

SUBNET = "172.31.248.0/24"


class RacingApi:
    def __init__(self, status: int, created_by_other: bool) -> None:
        self.status = status
        self.created_by_other = created_by_other
        self.network: dict[str, Any] | None = None

    def inspect_network(self, name: str) -> dict[str, Any]:
        if self.network is None:
            raise docker.errors.NotFound("no such network")
        return self.network

    def networks(self) -> list[dict[str, Any]]:
        return []

    def create_network(self, name: str, **kwargs: Any) -> None:
        if self.created_by_other:  # the other controller's create landed first
            self.network = {
                "Name": name,
                "Labels": {"fnplat.managed": "true"},
                "IPAM": {"Config": [{"Subnet": SUBNET, "Gateway": "172.31.248.1"}]},
            }
        response = requests.Response()
        response.status_code = self.status
        raise docker.errors.APIError("refused", response=response, explanation="Pool overlaps")


class Client:
    def __init__(self, api: RacingApi) -> None:
        self.api = api

    def close(self) -> None:
        return None


@pytest.mark.parametrize("status", [403, 409])
async def test_the_loser_of_a_creation_race_takes_the_winners_network(status: int) -> None:
    api = RacingApi(status, created_by_other=True)
    engine = DockerEngine("unit", client_factory=lambda *, max_pool_size: Client(api))  # type: ignore[arg-type,return-value]
    try:
        info = await engine.ensure_build_network("fnplat-builds", SUBNET)
    finally:
        await engine.close()
    assert (info.name, info.subnet, info.gateway_ip) == ("fnplat-builds", SUBNET, "172.31.248.1")


async def test_a_refusal_without_a_winner_is_an_error() -> None:
    api = RacingApi(403, created_by_other=False)
    engine = DockerEngine("unit", client_factory=lambda *, max_pool_size: Client(api))  # type: ignore[arg-type,return-value]
    try:
        with pytest.raises(EngineError, match="HTTP 403"):
            await engine.ensure_build_network("fnplat-builds", SUBNET)
    finally:
        await engine.close()
