"""Shape 6 of `bench/shapes.py`: the load client, and the bare aiohttp server it is compared with.

- `post_all`: an aiohttp client that POSTs NDJSON bodies (batches of the input's lines)
  from `concurrency` tasks at once, each sending its next body as soon as the last one was
  answered. A 503 (the server is not keeping up) is sent again after `RETRY_S`, not after
  the `Retry-After: 1` the engine sends: the benchmark wants the server's full rate, and a
  second's pause would measure the client instead.
- `serve` (`python bench/shape_http.py PORT OUTPUT VARIANT`): the hand-written equivalent of
  bench/shapes/http_ingest.yaml: one handler that reads the body, parses each line, sets two
  fields and removes one, appends the events to a file (flushed per request, as
  `file.write` flushes each batch) and answers 202. SIGINT or SIGTERM stops it.
"""

import asyncio
import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

PATH = "/events"
RETRY_S = 0.005
NDJSON = {"Content-Type": "application/x-ndjson"}


@dataclass
class LoadResult:
    seconds: float  # first request sent to last 202 received
    requests: int  # answered 202
    retried: int  # answered 503 and sent again
    events: int


def bodies(jsonl: Path, count: int, batch: int) -> list[bytes]:
    """The first `count` lines of the input, `batch` lines per body (read once, untimed)."""
    with jsonl.open("rb") as lines:
        chunk: list[bytes] = []
        out: list[bytes] = []
        for index, line in enumerate(lines):
            if index == count:
                break
            chunk.append(line)
            if len(chunk) == batch:
                out.append(b"".join(chunk))
                chunk = []
        if chunk:
            out.append(b"".join(chunk))
    return out


async def _post_all(url: str, payloads: list[bytes], concurrency: int) -> LoadResult:
    pending = iter(payloads)
    counts = {"requests": 0, "retried": 0}

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in pending:  # one shared iterator: each body goes to exactly one task
            while True:
                async with session.post(url, data=body, headers=NDJSON) as answer:
                    await answer.read()
                    if answer.status == 202:
                        counts["requests"] += 1
                        break
                    if answer.status != 503:
                        raise RuntimeError(f"POST {url}: {answer.status} {await answer.text()}")
                counts["retried"] += 1
                await asyncio.sleep(RETRY_S)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    events = sum(body.count(b"\n") for body in payloads)
    return LoadResult(seconds, counts["requests"], counts["retried"], events)


def post_all(port: int, payloads: list[bytes], concurrency: int) -> LoadResult:
    return asyncio.run(_post_all(f"http://127.0.0.1:{port}{PATH}", payloads, concurrency))


def free_port() -> int:
    """A port nobody listens on now (the server binds it a moment later; a clash fails the run)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, alive: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """True once something accepts connections on the port; False if `alive()` turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def codec(variant: str) -> tuple[Callable[[Any], Any], Callable[[Any], bytes]]:
    if variant == "orjson":
        import orjson

        return orjson.loads, orjson.dumps
    encode = json.JSONEncoder(separators=(",", ":")).encode
    return json.loads, lambda value: encode(value).encode()


async def serve(port: int, output: Path, variant: str) -> None:
    loads, dumps = codec(variant)
    with output.open("wb") as out:

        async def ingest(request: web.Request) -> web.Response:
            body = await request.read()
            lines = []
            for line in body.splitlines():
                if not line.strip():
                    continue
                event = loads(line)
                amount = event["amount"]
                event["amount_cents"] = int(amount * 100)
                event["value"] = amount * event["qty"]
                del event["region"]
                lines.append(dumps(event))
            lines.append(b"")
            out.write(b"\n".join(lines))
            out.flush()
            return web.json_response({"accepted": len(lines) - 1}, status=202)

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(PATH, ingest)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(f"usage: {sys.argv[0]} PORT OUTPUT stdlib|orjson")
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
