"""`WatchEvents`: reloads, state changes and failures as they happen, to each subscriber.

Each subscriber has its own bounded queue; one that does not keep up loses the oldest
events it has not read (and is told so), never slowing the engine down.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Final

from adapters.control.v1 import control_pb2 as pb
from adapters.serve.host import Host

QUEUE: Final = 1024


class EventStream:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.queue: asyncio.Queue[pb.EngineEvent] = asyncio.Queue(QUEUE)
        self.lost = 0
        host.listeners.append(self.publish)

    def publish(self, kind: str, file: str, graph: str, detail: str, record: dict[str, object]) -> None:
        event = pb.EngineEvent(time=time.time(), kind=kind, graph=graph, file=file, detail=detail,
                               json=json.dumps(record, default=str, separators=(",", ":")))
        if self.queue.full():
            self.queue.get_nowait()
            self.lost += 1
        self.queue.put_nowait(event)

    async def events(self) -> AsyncIterator[pb.EngineEvent]:
        while True:
            event = await self.queue.get()
            if self.lost:
                lost, self.lost = self.lost, 0
                yield pb.EngineEvent(time=time.time(), kind="error", detail=f"{lost} events were not delivered "
                                     "to this watcher (it read too slowly)", json="{}")
            yield event

    def close(self) -> None:
        if self.publish in self.host.listeners:
            self.host.listeners.remove(self.publish)
