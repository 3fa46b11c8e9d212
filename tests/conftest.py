from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.demo.standins import StandInServers
from tests.harness import ADMIN_TOKEN, GatewayThread, close_sdk_clients, settings_for, standins_running
from tests.redis_cluster import RedisCluster


@pytest.fixture(scope="module")
def standins() -> Iterator[StandInServers]:
    with standins_running() as servers:
        yield servers


@pytest.fixture(autouse=True)
def _reset_standins(request: pytest.FixtureRequest) -> None:
    if "standins" in request.fixturenames:
        servers: StandInServers = request.getfixturevalue("standins")
        for standin in servers.standins.values():
            standin.reset()


@pytest.fixture(scope="module")
def gateway(standins: StandInServers) -> Iterator[GatewayThread]:
    os.environ["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    with GatewayThread(settings_for(standins)) as gw:
        yield gw


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A private three-master Redis Cluster, shared by the contract suites that run on it."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    close_sdk_clients()  # their pooled sockets are closed now, not whenever the garbage collector runs
