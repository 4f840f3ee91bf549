"""Wake-ups between the scheduler and the IO tasks, all on one event loop thread."""

import asyncio
import contextlib
from collections.abc import Callable

from engine.node import INFINITY


class Wakeup:
    """Anyone who changes shared state calls `notify`; everyone waiting re-checks."""

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters = self.waiters
        self.waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until the next `notify`, or `timeout` seconds (infinity: no limit)."""
        if timeout <= 0:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        if timeout == INFINITY:
            await waiter
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout)

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self.wait(INFINITY)
