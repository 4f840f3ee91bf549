"""`http.post`: each batch is sent as one or more POST requests, retried when that can help.

Retries are a small loop rather than a library: aiohttp has none built in, and the rules
here are few and specific (which statuses and errors, `Retry-After`, resuming a batch the
runtime retries), so a dependency such as tenacity would add more than it saves.
"""

import asyncio
import email.utils
import errno
import time
from typing import Final

import aiohttp
from yarl import URL

from adapters.fast_json import encode_jsonl_bytes
from adapters.io.http.params import JSON, NDJSON, POST_TIMEOUT, HttpPostParams, seconds
from engine.errors import DROP, RETRY, STOP, RateLimitedLog
from engine.node import AsyncSink, Batch, NodeContext, NodeFailure
from engine.params import expect

CONTENT_TYPES: Final = {JSON: "application/json", NDJSON: "application/x-ndjson"}
MAX_WAIT_S: Final = 30.0  # the longest backoff or `Retry-After` the node waits for
READ_BODY_LIMIT: Final = 65536  # small answers are read so the connection can be reused

# Worth trying again: the server may be back, or less busy, a moment later. TLS
# certificate problems are connector errors too, but retrying cannot fix them.
RETRY_ERRORS: Final = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
FINAL_ERRORS: Final = (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)


def safe_url(url: str) -> str:
    """The URL as logs show it: no credentials, no query (either may hold a secret)."""
    parsed = URL(url)
    return str(parsed.with_user(None).with_query(None).with_fragment(None))


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def describe_error(exc: BaseException, timeout: str) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out after {timeout}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        reason = "connection refused" if code == errno.ECONNREFUSED else (
            exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__)
        return f"cannot connect: {reason.lower()}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


class _Attempt:
    """What one request came to: sent, or a problem and whether trying again may help."""

    def __init__(self, problem: str = "", retry: bool = False, wait_s: float | None = None) -> None:
        self.problem = problem
        self.retry = retry
        self.wait_s = wait_s  # from Retry-After


class HttpPost(AsyncSink):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, HttpPostParams)
        self.url = params.url
        self.shown_url = safe_url(self.url)
        self.format = params.format
        self.batch_size = params.batch_size
        self.timeout = params.timeout
        self.timeout_s = seconds(self.timeout, POST_TIMEOUT)
        self.retries = params.retries
        self.backoff_s = seconds(params.backoff, "0ms")
        self.headers = dict(params.headers)
        if not any(k.lower() == "content-type" for k in self.headers):
            self.headers["Content-Type"] = CONTENT_TYPES[self.format]
        self.session: aiohttp.ClientSession | None = None
        self.log = RateLimitedLog(ctx.clock)
        # Events given up on: not in the node's `errors` counter yet, as a sink cannot report
        # failed events to the runtime (docs/http.md).
        self.failed_events = 0
        self.requests = 0
        # Where to go on when the runtime retries the same batch (`on_error: retry`):
        # requests that already succeeded are not sent again.
        self.resume_batch: Batch | None = None
        self.resume_at = 0
        self.retried_batch: Batch | None = None  # `on_error: retry`: attempts used on this batch
        self.retried = 0

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                             headers=self.headers)

    async def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()

    def encode(self, events: Batch) -> bytes:
        lines = encode_jsonl_bytes(events)
        if self.format == NDJSON:
            return lines
        # One array: a raw newline only ever ends a line (JSON escapes those inside text).
        return b"[" + lines[:-1].replace(b"\n", b",") + b"]" if lines else b"[]"

    async def write(self, batch: Batch) -> None:
        start = self.resume_at if self.resume_batch is batch else 0
        self.resume_batch = None
        for at in range(start, len(batch), self.batch_size):
            events = batch[at:at + self.batch_size]
            problem = await self._send(self.encode(events))
            if problem:
                self._give_up(batch, at, len(events), problem)

    def _give_up(self, batch: Batch, at: int, count: int, problem: str) -> None:
        """The node's own retries are spent: apply `on_error` to these events."""
        line = f"{self.where()}: POST {self.shown_url} failed{problem}"
        policy = self.ctx.on_error
        action = policy.action
        if action == RETRY:
            # The runtime writes the same batch again after its backoff, as often as the
            # policy's attempts allow (resuming here); after that, `then` decides.
            if self.retried_batch is not batch:
                self.retried_batch, self.retried = batch, 0
            if self.retried < policy.attempts:
                self.retried += 1
                self.resume_batch, self.resume_at = batch, at
                raise NodeFailure(line)
            action = policy.then or DROP
        if action == STOP:
            raise NodeFailure(line)
        # `drop` (logged, counted) or `dead_letter` (each event to `errors`): the runtime's
        # error handling, so `--stats-file` counts them as this node's errors.
        self.failed_events += count
        self.give_up(batch[at:at + count], f"POST {self.shown_url} failed{problem}")

    async def _send(self, body: bytes) -> str:
        """POST one body, retrying; '' when sent, else ` after N retries: why`."""
        attempt = 0
        while True:
            result = await self._attempt(body)
            if not result.problem:
                return ""
            if not result.retry or attempt >= self.retries:
                after = f" after {attempt} {'retry' if attempt == 1 else 'retries'}" if attempt else ""
                return f"{after}: {result.problem}"
            wait = self.backoff_s * (2 ** attempt) * (0.5 + 0.5 * self.ctx.rng.random())
            if result.wait_s is not None:
                wait = result.wait_s
            await asyncio.sleep(min(wait, MAX_WAIT_S))
            attempt += 1

    async def _attempt(self, body: bytes) -> _Attempt:
        assert self.session is not None
        self.requests += 1
        try:
            async with self.session.post(self.url, data=body, allow_redirects=False) as response:
                length = response.content_length
                if length is not None and length <= READ_BODY_LIMIT:
                    await response.read()
                status = response.status
                if status < 300:
                    return _Attempt()
                problem = f"{status} {response.reason or ''}".strip()
                if status == 429 or status >= 500:
                    return _Attempt(problem, True, retry_after_s(response.headers.get("Retry-After"), time.time()))
                return _Attempt(problem)
        except FINAL_ERRORS as exc:
            return _Attempt(describe_error(exc, self.timeout))
        except RETRY_ERRORS as exc:
            return _Attempt(describe_error(exc, self.timeout), True)
        except aiohttp.ClientError as exc:
            return _Attempt(describe_error(exc, self.timeout))
