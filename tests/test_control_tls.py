"""TLS and mutual TLS on a real `engine serve`: its control plane in front of a served
directory (in-process, as in tests/test_control.py), and `engine serve` and `engine ctl` as
processes configured by their settings. Every caller tries the same change, pausing the
graph: whether it happened is read from the running graph itself.

A client without a certificate, or with one from another CA, is refused by the TLS
handshake (grpcio's `require_client_auth`): the call fails as UNAVAILABLE, before any
method is known.
"""

import asyncio
import json

import grpc
import pytest

from adapters.control.server import ControlPlane
from adapters.control.v1 import control_pb2 as pb
from adapters.control.v1 import control_pb2_grpc
from tests import tls_support
from tests.ctl_serve_support import Engine
from tests.serve_support import Serving, ticking_graph
from tests.tls_support import CLIENT_SUBJECT, TlsFiles

tls_files = tls_support.tls_files  # the session's certificates, a fixture

TOKEN = "s3cret-token"
CALL_S = 5.0
OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def served(tmp_path, token, tls: TlsFiles, mutual: bool, scenario) -> None:  # type: ignore[no-untyped-def]
    """A served directory with one ticking graph, and its control plane on TLS (with the
    client CA when `mutual`); runs `scenario(s, port)`."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "g.yaml").write_text(ticking_graph(tmp_path / "out.jsonl", "A", name="ticks"))

    async def main() -> None:
        async with Serving(graphs) as s:
            plane = ControlPlane("127.0.0.1:0", token, tls.server_cert, tls.server_key, tls.ca if mutual else None,
                                 tmp_path / "audit.jsonl", s.server, s.host, 5.0)
            await plane.start()
            try:
                await scenario(s, plane.port)
            finally:
                await plane.stop(0)

    asyncio.run(asyncio.wait_for(main(), 60))


async def pause(port: int, credentials: grpc.ChannelCredentials | None, token: str = "") -> grpc.StatusCode:
    """Ask to pause graph `ticks`; OK or the refusal's code."""
    target = f"127.0.0.1:{port}"
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    channel = grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
    async with channel:
        try:
            await control_pb2_grpc.ControlStub(channel).Pause(pb.PauseRequest(graph="ticks"), metadata=metadata,
                                                              timeout=CALL_S)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return OK


def paused(s: Serving) -> bool:
    return bool(s.running("g.yaml").runtime.controls.paused_graph)


def accepted(tmp_path) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(principal, method) of each call the audit log records as done."""
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    return [(r["principal"], r["method"]) for r in map(json.loads, lines) if r["result"] == "ok"]


def test_tls_with_a_token(tmp_path, tls_files: TlsFiles):
    async def scenario(s: Serving, port: int) -> None:
        assert await pause(port, None, TOKEN) == UNAVAILABLE  # plaintext to a TLS server
        assert await pause(port, grpc.ssl_channel_credentials(), TOKEN) == UNAVAILABLE  # the system's CAs only
        assert await pause(port, tls_files.client_credentials()) == UNAUTHENTICATED  # TLS, but no token
        assert not paused(s)
        assert await pause(port, tls_files.client_credentials(), TOKEN) == OK
        assert paused(s)

    served(tmp_path, TOKEN, tls_files, False, scenario)
    assert accepted(tmp_path) == [("token", "Pause")]


def test_mutual_tls_accepts_only_a_certificate_its_ca_signed(tmp_path, tls_files: TlsFiles):
    async def scenario(s: Serving, port: int) -> None:
        assert await pause(port, tls_files.client_credentials()) == UNAVAILABLE  # no client certificate
        assert await pause(port, tls_files.client_credentials(certificate=True, stranger=True)) == UNAVAILABLE
        assert await pause(port, None) == UNAVAILABLE
        assert not paused(s)
        assert await pause(port, tls_files.client_credentials(certificate=True)) == OK
        assert paused(s)
        # A stream over the same kind of channel: the tap of the paused graph's edge answers
        # once resumed.
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", tls_files.client_credentials(certificate=True)) as ch:
            stub = control_pb2_grpc.ControlStub(ch)
            await stub.Resume(pb.PauseRequest(graph="ticks"), timeout=CALL_S)
            tapped = [json.loads(t.json) async for t in stub.Tap(pb.TapRequest(graph="ticks", edge="ticks->out",
                                                                                limit=2, per_second=100))]
            assert [t["v"] for t in tapped] == ["A", "A"]

    served(tmp_path, None, tls_files, True, scenario)
    assert accepted(tmp_path) == [(CLIENT_SUBJECT, "Pause"), (CLIENT_SUBJECT, "Resume")]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["certificate", "certificate-and-token"])
def test_engine_serve_and_ctl_processes_with_mutual_tls(tmp_path, tls_files: TlsFiles, token):
    """The settings (`HEADRACE_CONTROL_TLS_CERT`, `_KEY`, `_CLIENT_CA`) and `engine ctl --ca
    --cert --key`, each in its own process."""
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.yaml").write_text(ticking_graph(tmp_path / "out.jsonl", "A", name="ticks"))
    settings = {"CONTROL_TLS_CERT": str(tls_files.server_cert), "CONTROL_TLS_KEY": str(tls_files.server_key),
                "CONTROL_CLIENT_CA": str(tls_files.ca), "AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    if token:
        settings["CONTROL_TOKEN"] = token
    env = {"HEADRACE_CONTROL_TOKEN": token} if token else {}
    ca = ("--ca", str(tls_files.ca))
    mine = (*ca, "--cert", str(tls_files.client_cert), "--key", str(tls_files.client_key))
    stranger = (*ca, "--cert", str(tls_files.stranger_cert), "--key", str(tls_files.stranger_key))
    engine = Engine(tmp_path, settings)
    try:
        engine.wait_serving(*mine)
        for refused in (engine.ctl("pause", "ticks", *ca, env=env), engine.ctl("pause", "ticks", *stranger, env=env),
                        engine.ctl("pause", "ticks", env=env)):
            assert refused.returncode == 2, refused.stderr  # unreachable: the handshake failed
            assert refused.stderr.startswith(f"engine: error: cannot reach the control plane at {engine.address}")
        status = json.loads(engine.ctl("status", "--json", *mine, env=env).stdout)
        assert [(g["name"], g["state"]) for g in status["graphs"]] == [("ticks", "running")]
        done = engine.ctl("pause", "ticks", *mine, env=env)
        assert done.returncode == 0, done.stderr
        status = json.loads(engine.ctl("status", "--json", *mine, env=env).stdout)
        assert [(g["name"], g["state"]) for g in status["graphs"]] == [("ticks", "paused")]
    finally:
        assert engine.stop() == 0, engine.log.read_text()
    assert accepted(tmp_path) == [(CLIENT_SUBJECT, "Pause")]  # the certificate names the caller, token or not
