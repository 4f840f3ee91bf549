"""Refused control calls are audited: a real `engine serve` host and control plane in-process,
called over loopback with no token, a wrong token, a flood, and under mutual TLS."""

import asyncio
import json

import grpc
import pytest

from adapters.control.server import ControlPlane
from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc
from tests import tls_support
from tests.serve_support import Serving, events, ticking_graph
from tests.tls_support import CLIENT_SUBJECT, TlsFiles

tls_files = tls_support.tls_files  # the session's certificates, a fixture

TOKEN = "s3cret-token-4f1d9c"
WRONG = "guessed-token-77ab01"
LIMIT_S = 60.0


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


def serve(tmp_path, scenario, token=TOKEN, tls=None, refusal_window_s=60.0):
    """Serve tmp_path/graphs (one ticking graph, `ticks`) with a control plane writing
    tmp_path/audit.jsonl; run `scenario(s, stub, plane)`, stop the plane, return the records."""
    graphs = tmp_path / "graphs"
    graphs.mkdir(exist_ok=True)
    (graphs / "g.yaml").write_text(ticking_graph(tmp_path / "out.jsonl", "A", name="ticks"))
    audit = tmp_path / "audit.jsonl"
    cert, key, ca = (tls.server_cert, tls.server_key, tls.ca) if tls is not None else (None, None, None)

    async def main():  # type: ignore[no-untyped-def]
        async with Serving(graphs) as s:
            plane = ControlPlane("127.0.0.1:0", token, cert, key, ca, audit, s.server, s.host, 5.0,
                                 refusal_window_s=refusal_window_s)
            await plane.start()
            try:
                await scenario(s, plane)
            finally:
                await plane.stop(0)

    asyncio.run(asyncio.wait_for(main(), LIMIT_S))
    return [json.loads(line) for line in audit.read_text().splitlines()]


def insecure(plane):
    """A channel on a connection of its own (grpc otherwise shares one between channels)."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{plane.port}", options=[("grpc.use_local_subchannel_pool", 1)])
    return channel, control_pb2_grpc.ControlStub(channel)


async def refused(call, **kwargs) -> str:
    """The call's refusal message (it must be refused)."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        result = call(**kwargs)
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return error.value.details()


def audited(tmp_path, cli):
    """`engine audit verify` on the file; the file's text, for credential checks."""
    path = tmp_path / "audit.jsonl"
    code, out, _ = cli("audit", "verify", str(path))
    assert code == 0 and out.endswith("chain intact\n"), out
    return path.read_text()


def without_time_and_chain(record):
    return {k: v for k, v in record.items() if k not in ("time", "prev", "hash")}


def test_refused_calls_are_audited_with_peer_method_and_reason_never_the_token(tmp_path, cli):
    peers = []

    async def scenario(s, plane):  # type: ignore[no-untyped-def]
        channel, stub = insecure(plane)
        async with channel:
            await s.until(lambda: events(tmp_path / "out.jsonl"))
            await refused(stub.Pause, request=pb.PauseRequest(graph="ticks"))
            await refused(stub.Pause, request=pb.PauseRequest(graph="ticks"), metadata=bearer(WRONG))
            await refused(stub.Drain, request=pb.DrainRequest(graph="ticks"), metadata=(("authorization", TOKEN),))
            await refused(stub.ListGraphs, request=pb.ListGraphsRequest(), metadata=bearer(TOKEN + "x"))
            await refused(stub.Tap, request=pb.TapRequest(graph="ticks", edge="ticks->out"))
            await refused(channel.unary_unary("/headrace.control.v1.Control/DropEverything"), request=b"",
                          metadata=bearer(WRONG))
            assert s.running("g.yaml").runtime.controls.paused_graph is False  # nothing refused ran
            reply = await stub.Pause(pb.PauseRequest(graph="ticks"), metadata=bearer(TOKEN))
            assert reply.changed
            peers.append(await stub.ListGraphs(pb.ListGraphsRequest(), metadata=bearer(TOKEN)))

    rows = serve(tmp_path, scenario)
    text = audited(tmp_path, cli)
    assert TOKEN not in text and WRONG not in text  # neither the right token nor a guess, anywhere
    refusals, accepted = rows[:-1], rows[-1]
    assert [(r["method"], r["detail"]) for r in refusals] == [
        ("Pause", "no token"), ("Pause", "wrong token"), ("Drain", "no token"),  # no "Bearer ": no token
        ("ListGraphs", "wrong token"), ("Tap", "no token"), ("DropEverything", "wrong token")]
    for row in refusals:
        assert row["peer"].startswith("ipv4:127.0.0.1:") and row["principal"] == f"anonymous@{row['peer']}"
        assert (row["target"], row["result"]) == ("", "unauthenticated")
        assert list(row) == ["time", "principal", "peer", "method", "target", "result", "detail", "prev", "hash"]
    # The accepted call is written exactly as before: no peer, no count, and reads are not audited.
    assert list(accepted) == ["time", "principal", "method", "target", "result", "prev", "hash"]
    assert without_time_and_chain(accepted) == {"principal": "token", "method": "Pause", "target": "ticks",
                                                 "result": "ok"}


def test_a_flood_of_refused_calls_writes_a_bounded_number_of_lines(tmp_path, cli):
    """1,000 refused calls from 20 connections (20 ports of one host), accepted calls among
    them: 5 refused lines and one summary, every accepted call written."""
    before_stop = []

    async def scenario(s, plane):  # type: ignore[no-untyped-def]
        channels = [insecure(plane) for _ in range(20)]
        try:
            async def flood(stub) -> None:  # type: ignore[no-untyped-def]
                for n in range(50):
                    await refused(stub.Pause, request=pb.PauseRequest(graph="ticks"),
                                  metadata=bearer(f"{WRONG}-{n}") if n % 2 else ())
            good = channels[0][1]
            await asyncio.gather(*(flood(stub) for _, stub in channels),
                                 *(good.Pause(pb.PauseRequest(graph="ticks"), metadata=bearer(TOKEN))
                                   for _ in range(3)))
            before_stop.extend((tmp_path / "audit.jsonl").read_text().splitlines())
        finally:
            for channel, _ in channels:
                await channel.close()

    rows = serve(tmp_path, scenario)
    text = audited(tmp_path, cli)
    assert WRONG not in text and TOKEN not in text
    accepted = [r for r in rows if r["result"] != "unauthenticated"]
    assert [(r["principal"], r["method"]) for r in accepted] == [("token", "Pause")] * 3  # never limited
    lines = [r for r in rows if r["result"] == "unauthenticated" and "count" not in r]
    summaries = [r for r in rows if "count" in r]
    assert len(before_stop) == 3 + 10  # 5 per reason ("no token", "wrong token") until the window ends
    assert sorted(r["detail"] for r in lines) == ["no token"] * 5 + ["wrong token"] * 5
    assert len({r["peer"] for r in lines}) > 1  # from several connections (ports), limited as one host
    assert sorted((r["peer"], r["count"], r["detail"].split(" in the last ")[0]) for r in summaries) == [
        ("ipv4:127.0.0.1", 495, "495 more refused attempts from ipv4:127.0.0.1 (no token)"),
        ("ipv4:127.0.0.1", 495, "495 more refused attempts from ipv4:127.0.0.1 (wrong token)")]
    assert len(rows) == 3 + 10 + 2  # for 1,003 calls


def test_the_summary_is_written_when_the_window_ends(tmp_path, cli):
    path = tmp_path / "audit.jsonl"

    async def scenario(s, plane):  # type: ignore[no-untyped-def]
        channel, stub = insecure(plane)
        async with channel:
            for _ in range(8):
                await refused(stub.ListGraphs, request=pb.ListGraphsRequest())
            await s.until(lambda: '"count":3' in path.read_text(), timeout=20, what="the window's summary")

    rows = serve(tmp_path, scenario, refusal_window_s=0.5)
    assert [r.get("count") for r in rows] == [None] * 5 + [3]  # written while serving, not only at stop
    assert rows[-1]["detail"].startswith("3 more refused attempts from ipv4:127.0.0.1 (no token) in the last ")
    audited(tmp_path, cli)


def test_mutual_tls_audits_the_certificate_and_leaves_handshake_refusals_out(tmp_path, cli, tls_files: TlsFiles):
    """A client without a certificate from the CA is refused by the TLS handshake, before any
    method is known: no line (docs/control.md says so). With a certificate but a wrong token
    the refusal names the certificate's subject."""
    async def scenario(s, plane):  # type: ignore[no-untyped-def]
        target = f"127.0.0.1:{plane.port}"
        for credentials in (tls_files.client_credentials(),
                            tls_files.client_credentials(certificate=True, stranger=True)):
            async with grpc.aio.secure_channel(target, credentials) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await control_pb2_grpc.ControlStub(channel).Pause(pb.PauseRequest(graph="ticks"),
                                                                      metadata=bearer(TOKEN), timeout=5)
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (tmp_path / "audit.jsonl").read_text() == ""
        async with grpc.aio.secure_channel(target, tls_files.client_credentials(certificate=True)) as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            await refused(stub.Pause, request=pb.PauseRequest(graph="ticks"), metadata=bearer(WRONG))
            assert (await stub.Pause(pb.PauseRequest(graph="ticks"), metadata=bearer(TOKEN))).changed

    rows = serve(tmp_path, scenario, tls=tls_files)
    text = audited(tmp_path, cli)
    assert WRONG not in text and TOKEN not in text
    assert [without_time_and_chain(r) | {"peer": r.get("peer", "")[:15]} for r in rows] == [
        {"principal": CLIENT_SUBJECT, "peer": "ipv4:127.0.0.1:", "method": "Pause", "target": "",
         "result": "unauthenticated", "detail": "wrong token"},
        {"principal": CLIENT_SUBJECT, "peer": "", "method": "Pause", "target": "ticks", "result": "ok"}]
