"""The shared-state layer: the Redis client and its errors, Lua script loading, the one outage tracker
and the instance heartbeat. Budgets (metering/) and breakers (resilience/) keep their own Lua scripts and
in-process fallbacks, and take what they share from here, so a new store is one new module."""

from gateway.state.client import STORE_ERRORS, drop_connections, load_script, redis_client
from gateway.state.instances import Instances
from gateway.state.outage import Outage
from gateway.state.owners import Owner, ResponseOwners

__all__ = [
    "STORE_ERRORS",
    "Instances",
    "Outage",
    "Owner",
    "ResponseOwners",
    "drop_connections",
    "load_script",
    "redis_client",
]
