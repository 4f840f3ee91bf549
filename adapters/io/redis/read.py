"""`redis.read`: a consumer of a consumer group on one stream (XREADGROUP).

- **Group.** Created at open when missing (`XGROUP CREATE ... MKSTREAM`, from `start`), and
  again whenever the server answers NOGROUP (a restart that lost it, a deleted key).
- **Own pending entries first.** After open and after every reconnect the node reads its
  consumer's pending entries list (ids from "0") before new entries (">"): entries the
  server delivered to it and never saw acknowledged (a crash, a reply lost with the
  connection) come again.
- **Acknowledgements.** The ids of a batch are XACKed once the runtime has handed the whole
  batch on (`handed_on`: committed to LMDB when the output edge is durable), failed entries
  included, as their fate was decided by `on_error`. The next `read` waits for that XACK.
  So the number of entries read but not acknowledged is at most what the output edges
  hold plus one batch.
- **Position.** Behind a durable edge the id of the last entry read is saved in the same
  commit as the entries. After a crash between that commit and the XACK, those entries are
  still pending: on the re-read they are acknowledged without being emitted again.
- **Bounded.** Each read asks for at most `batch_size` entries and waits at most `block`.
"""

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Final

from adapters.fast_json import loads_body
from adapters.io.reconnect import CLOSED, Link
from adapters.io.redis.connection import classify, close_quietly, make_client
from adapters.io.redis.params import JSON, RedisReadParams, seconds, shown_address
from engine.node import AsyncSource, Batch, Failures, NodeContext, NodeFailure
from engine.params import expect

if TYPE_CHECKING:
    from redis.asyncio import Redis

LOG: Final = logging.getLogger("headrace")
PENDING_START: Final = "0"
NEW_ENTRIES: Final = ">"

Entry = tuple[str, dict[str, str] | None]


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id `ms-seq` as numbers, for comparing ids."""
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


class RedisRead(AsyncSource):
    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(ctx)
        params = expect(ctx.params, RedisReadParams)
        self.connection = params.connection
        self.stream = params.stream
        self.group = params.group
        self.consumer = params.consumer or (f"{ctx.graph}.{ctx.name}" if ctx.graph else ctx.name)
        self.start = params.start
        self.decode_json = params.decode == JSON
        self.field = params.field
        self.id_field = params.id_field
        self.batch_size = params.batch_size
        self.block_ms = max(1, int(seconds(params.block, "1s") * 1000))
        self.link = Link(ctx, classify(self.connection.url, self.stream))
        self.client: Redis | None = None
        self.pending_from: str | None = PENDING_START  # None: reading new entries (">")
        self.last_id = ""  # the last entry of the last batch read: the position
        self.committed = (-1, -1)  # from `resume`: entries up to it are on the durable edge already
        self.unacked: list[str] = []  # ids of the last batch, acknowledged once handed on
        self.acking: asyncio.Task[None] | None = None
        self.acked = 0  # entries acknowledged, for the tests and the stats
        self.skipped = 0  # pending entries found committed already (acknowledged, not emitted)

    def where(self) -> str:
        return f"node '{self.ctx.name}' ({self.ctx.type_name})"

    # -- connection ---------------------------------------------------------------------------
    async def connect(self) -> None:
        """A fresh client, and the group (made when missing). The pending entries come first
        again: the server may have restarted with entries delivered but never acknowledged."""
        await self._drop_client()
        self.client = make_client(self.ctx, self.connection, self.block_ms / 1000.0)
        from redis.exceptions import ResponseError

        try:
            await self.client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
            LOG.info("%s: created consumer group '%s' on stream '%s' at %s (from %s)", self.where(), self.group,
                     self.stream, shown_address(self.connection.url), self.start,
                     extra={"graph": self.ctx.graph, "node": self.ctx.name})
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):  # BUSYGROUP: it exists, as it should
                raise
        self.pending_from = PENDING_START

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await close_quietly(client)

    async def open(self) -> None:
        await self.link.call(_nothing, self.connect)

    def health(self) -> dict[str, object]:
        return self.link.health()

    # -- reading ------------------------------------------------------------------------------
    async def _fetch(self) -> list[Entry]:
        # Any: redis-py types the reply for every protocol and decoding; this client's is RESP2, text.
        client: Any = self.client
        assert client is not None
        if self.pending_from is not None:
            reply = await client.xreadgroup(self.group, self.consumer, {self.stream: self.pending_from},
                                                 count=self.batch_size)
            entries: list[Entry] = reply[0][1] if reply else []
            if entries:
                self.pending_from = entries[-1][0]
                return entries
            self.pending_from = None  # this consumer's pending entries are all read
        reply = await client.xreadgroup(self.group, self.consumer, {self.stream: NEW_ENTRIES},
                                             count=self.batch_size, block=self.block_ms)
        return reply[0][1] if reply else []

    async def read(self, failures: Failures, outs: list[Batch]) -> bool:
        if self.acking is not None:
            # Shielded: a stop cancels the read, not the acknowledgement (`close` waits for it).
            await asyncio.shield(self.acking)
            self.acking = None
        entries = await self.link.call(self._fetch, self.connect)
        if not entries:
            return True
        out = outs[0]
        committed = self.committed
        for entry_id, fields in entries:
            self.unacked.append(entry_id)
            if not fields:
                continue  # deleted (XDEL, trimmed) while pending: only its id is left
            if committed[0] >= 0 and self.pending_from is not None and id_key(entry_id) <= committed:
                self.skipped += 1  # on the durable edge before a crash; never acknowledged
                continue
            if self.decode_json:
                self._decode(entry_id, fields, failures, out, outs)
            else:
                if self.id_field:
                    fields[self.id_field] = entry_id
                out.append(fields)  # type: ignore[arg-type]  # a fresh dict, the event itself
        self.last_id = entries[-1][0]
        return True

    def _decode(self, entry_id: str, fields: dict[str, str], failures: Failures, out: Batch,
                outs: list[Batch]) -> None:
        text = fields.get(self.field)
        problem = ""
        if text is None:
            problem = f"entry {entry_id} has no field '{self.field}'"
        else:
            try:
                value = loads_body(text.encode("utf-8", "surrogatepass"))
            except (json.JSONDecodeError, UnicodeError) as exc:
                reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                problem = f"entry {entry_id}: field '{self.field}' is not valid JSON ({reason})"
            else:
                if isinstance(value, dict):
                    if self.id_field:
                        value[self.id_field] = entry_id
                    out.append(value)
                    return
                problem = f"entry {entry_id}: field '{self.field}' holds JSON {type(value).__name__}, not an object"
        # Decoding the same text again cannot succeed: a retry policy uses up its attempts at
        # once and applies its `then`. The entry is acknowledged with its batch either way.
        while not failures.event_failed({"id": entry_id, "fields": fields}, problem, outs):
            pass

    # -- acknowledging ------------------------------------------------------------------------
    def handed_on(self) -> None:
        """Every entry of the last read is on the output edges (committed, when durable):
        acknowledge them. The next `read` waits for the XACK."""
        if not self.unacked:
            return
        ids, self.unacked = self.unacked, []
        self.acking = asyncio.get_running_loop().create_task(self._ack(ids))

    async def _ack(self, ids: list[str]) -> None:
        async def xack() -> None:
            assert self.client is not None
            await self.client.xack(self.stream, self.group, *ids)

        await self.link.call(xack, self.connect)
        self.acked += len(ids)

    def done_reading(self) -> None:
        self.link.stopping = True  # a last XACK gets one try, not a reconnect loop

    def position(self) -> str:
        if not self.last_id:
            return ""
        return json.dumps([self.stream, self.group, self.consumer, self.last_id])

    def resume(self, position: str) -> None:
        """Entries up to the saved id reached the durable edge; if the same stream, group and
        consumer still has them pending, they are acknowledged, not emitted again."""
        try:
            stream, group, consumer, last_id = json.loads(position)
            if (stream, group, consumer) == (self.stream, self.group, self.consumer):
                self.committed = id_key(str(last_id))
                self.last_id = str(last_id)
        except (ValueError, TypeError):
            pass  # another node's or version's position: read the pending entries as they are

    async def close(self) -> None:
        try:
            if self.acking is not None:
                await self.acking
        except NodeFailure as exc:
            LOG.warning("%s: the last batch was not acknowledged (%s); it will be read again after a restart",
                        self.where(), exc, extra={"graph": self.ctx.graph, "node": self.ctx.name})
        finally:
            self.acking = None
            self.link.state = CLOSED
            await self._drop_client()


async def _nothing() -> None:
    """The operation of `open`: connecting (and making the group) is the whole work."""

