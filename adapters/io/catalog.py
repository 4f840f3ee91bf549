"""Every connector's node specs, in the order `docs/nodes.md` lists them. A new connector
is one module with `SPECS` and one line here (adapters/io/__init__.py has the contract)."""

from typing import Final

from adapters.io import mqtt, nats, postgres, redis
from adapters.io.files import specs as files
from adapters.io.http import specs as http
from engine.spec import NodeSpec

IO_SPECS: Final[tuple[NodeSpec, ...]] = (
    files.SPECS
    + http.SPECS
    + postgres.SPECS
    + redis.SPECS
    + nats.SPECS
    + mqtt.SPECS
)
