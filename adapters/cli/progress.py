"""A progress line for finite file sources, on a terminal only."""

import asyncio

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from engine.runtime import Runtime

REFRESH_S = 0.25


async def show_progress(runtime: Runtime) -> None:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as progress:
        tasks: dict[str, TaskID] = {}
        while True:
            for name, done, total in runtime.progress():
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total)
                progress.update(tasks[name], completed=done)
            await asyncio.sleep(REFRESH_S)
