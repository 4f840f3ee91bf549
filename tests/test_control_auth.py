"""Who may call the control plane: the bind rule, TLS files, and the token / TLS / mutual-TLS
matrix against a real grpc.aio server on 127.0.0.1 (a fake Control servicer, the real
interceptor, health and reflection)."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from adapters.control.auth import (
    NO_CERTIFICATE,
    NO_CLIENT_CERTIFICATE,
    NO_TOKEN,
    UNAUTHENTICATED_MESSAGE,
    WRONG_TOKEN,
    ControlSecurityError,
    TokenInterceptor,
    check_bind,
    principal,
    server_credentials,
)
from adapters.control.v1 import control_pb2, control_pb2_grpc
from tests import tls_support
from tests.tls_support import CLIENT_SUBJECT, TlsFiles

tls_files = tls_support.tls_files  # the session's certificates, a fixture

TOKEN = "s3cret-token"
LIMIT_S = 10.0
CALL_S = 3.0


# --- the bind rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1:50051", "127.8.9.10:1", "[::1]:50051", "localhost:50051", "LocalHost:1", "[::ffff:127.0.0.1]:1"])
def test_loopback_needs_no_token(address, caplog):
    check_bind(address, None, tls=False)
    check_bind(address, TOKEN, tls=False)
    assert caplog.records == []


@pytest.mark.parametrize("address", [
    "0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "engine.internal:50051", "127.0.0.1.nip.io:1", "[::2]:1"])
def test_elsewhere_needs_a_token(address):
    with pytest.raises(ControlSecurityError) as caught:
        check_bind(address, None, tls=True)
    assert str(caught.value) == (f"refusing to serve the control plane on {address} without a token: "
                                 "set HEADRACE_CONTROL_TOKEN, or bind to 127.0.0.1")
    with pytest.raises(ControlSecurityError):
        check_bind(address, "", tls=True)
    check_bind(address, TOKEN, tls=True)


def test_a_token_in_clear_text_off_loopback_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="headrace"):
        check_bind("0.0.0.0:50051", TOKEN, tls=False)
    assert [r.getMessage() for r in caplog.records] == [(
        "the control plane on 0.0.0.0:50051 is plaintext: its token crosses the network in clear text; "
        "set HEADRACE_CONTROL_TLS_CERT and HEADRACE_CONTROL_TLS_KEY, or keep it behind a proxy that terminates TLS")]


# --- TLS files --------------------------------------------------------------------------------

def test_no_files_is_plaintext():
    assert server_credentials(None, None, None) is None


def test_tls_and_mutual_tls_credentials(tls_files):
    assert isinstance(server_credentials(tls_files.server_cert, tls_files.server_key, None), grpc.ServerCredentials)
    assert isinstance(server_credentials(tls_files.server_cert, tls_files.server_key, tls_files.ca),
                      grpc.ServerCredentials)


def bad_credentials(cert, key, ca) -> str:
    with pytest.raises(ControlSecurityError) as caught:
        server_credentials(cert, key, ca)
    return str(caught.value)


def test_tls_file_problems_name_the_setting(tls_files, tmp_path):
    f = tls_files
    assert bad_credentials(f.server_cert, None, None) == (
        "HEADRACE_CONTROL_TLS_CERT is set but HEADRACE_CONTROL_TLS_KEY is not: "
        "TLS needs both the certificate and its key")
    assert bad_credentials(None, f.server_key, f.ca) == (
        "HEADRACE_CONTROL_TLS_KEY is set but HEADRACE_CONTROL_TLS_CERT is not: "
        "TLS needs both the certificate and its key")
    assert bad_credentials(None, None, f.ca) == (
        "HEADRACE_CONTROL_CLIENT_CA is set but HEADRACE_CONTROL_TLS_CERT and HEADRACE_CONTROL_TLS_KEY are not: "
        "mutual TLS needs the server's own certificate and key too")
    missing = tmp_path / "missing.pem"
    assert bad_credentials(missing, f.server_key, None) == f"HEADRACE_CONTROL_TLS_CERT: no such file: {missing}"
    assert bad_credentials(f.server_cert, missing, None) == f"HEADRACE_CONTROL_TLS_KEY: no such file: {missing}"
    assert bad_credentials(f.server_cert, f.server_key, missing) == (
        f"HEADRACE_CONTROL_CLIENT_CA: no such file: {missing}")
    assert bad_credentials(tmp_path, f.server_key, None) == (
        f"HEADRACE_CONTROL_TLS_CERT: {tmp_path} is a directory; name a PEM certificate file")
    assert bad_credentials(f.server_key, f.server_key, None) == (
        f"HEADRACE_CONTROL_TLS_CERT: {f.server_key} is not a PEM certificate "
        "(no '-----BEGIN ...CERTIFICATE-----' block)")
    assert bad_credentials(f.server_cert, f.server_cert, None) == (
        f"HEADRACE_CONTROL_TLS_KEY: {f.server_cert} is not a PEM private key "
        "(no '-----BEGIN ...PRIVATE KEY-----' block)")
    assert bad_credentials(f.server_cert, f.client_key, None) == (
        f"HEADRACE_CONTROL_TLS_KEY: {f.client_key} is not the key of the certificate in {f.server_cert}")
    garbled = tmp_path / "garbled.pem"
    garbled.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    assert bad_credentials(garbled, f.server_key, None).startswith(
        f"HEADRACE_CONTROL_TLS_CERT, HEADRACE_CONTROL_TLS_KEY: {garbled} and {f.server_key} are not a usable "
        "PEM certificate and key (")
    assert bad_credentials(f.server_cert, f.server_key, garbled).startswith(
        f"HEADRACE_CONTROL_CLIENT_CA: {garbled} is not a usable PEM CA certificate (")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
    assert bad_credentials(f.server_cert, encrypted, None) == (
        f"HEADRACE_CONTROL_TLS_KEY: {encrypted} is encrypted; give the key without a passphrase "
        "(keep the file readable by the engine only)")


# --- a real server --------------------------------------------------------------------------

class FakeControl(control_pb2_grpc.ControlServicer):
    """ListGraphs answers one graph; Tap streams two events (an async generator), WatchEvents
    one (written through the context); each notes who called."""

    def __init__(self, token_set: bool) -> None:
        self.token_set = token_set
        self.callers: list[str] = []

    async def ListGraphs(self, request, context):
        self.callers.append(principal(context, self.token_set))
        return control_pb2.ListGraphsResponse(graphs=[control_pb2.GraphSummary(name="orders", state="running")])

    async def Tap(self, request, context):
        self.callers.append(principal(context, self.token_set))
        for n in range(2):
            yield control_pb2.TapEvent(edge=request.edge, json=f'{{"n": {n}}}')

    async def WatchEvents(self, request, context):
        self.callers.append(principal(context, self.token_set))
        await context.write(control_pb2.EngineEvent(kind="reload", graph="orders"))


@dataclass
class Served:
    port: int
    control: FakeControl
    secure: bool
    results: list[object] = field(default_factory=list)

    def channel(self, credentials: grpc.ChannelCredentials | None = None) -> grpc.aio.Channel:
        target = f"127.0.0.1:{self.port}"
        return grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)


@contextlib.asynccontextmanager
async def serving(token: str | None = None, credentials: grpc.ServerCredentials | None = None,
                  mutual: bool = False, on_refused=None) -> AsyncIterator[Served]:
    server = grpc.aio.server(interceptors=[TokenInterceptor(token, mutual, on_refused)])
    control = FakeControl(token is not None)
    control_pb2_grpc.add_ControlServicer_to_server(control, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    reflection.enable_server_reflection(
        ["headrace.control.v1.Control", "grpc.health.v1.Health", reflection.SERVICE_NAME], server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield Served(port, control, credentials is not None)
    finally:
        await server.stop(None)


def run(test) -> None:
    asyncio.run(asyncio.wait_for(test, LIMIT_S))


def bearer(token: str, scheme: str = "Bearer") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"{scheme} {token}"),)


async def list_graphs(channel: grpc.aio.Channel, metadata=()) -> tuple[grpc.StatusCode, str]:
    """(OK, the graph names) or (the error code, its message)."""
    try:
        answer = await control_pb2_grpc.ControlStub(channel).ListGraphs(
            control_pb2.ListGraphsRequest(), metadata=metadata, timeout=CALL_S)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ",".join(g.name for g in answer.graphs)


async def tap(channel: grpc.aio.Channel, metadata=()) -> tuple[grpc.StatusCode, str]:
    events = []
    try:
        async for event in control_pb2_grpc.ControlStub(channel).Tap(
                control_pb2.TapRequest(graph="orders", edge="a->b"), metadata=metadata, timeout=CALL_S):
            events.append(event.json)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, " ".join(events)


async def watch(channel: grpc.aio.Channel, metadata=()) -> tuple[grpc.StatusCode, str]:
    try:
        kinds = [e.kind async for e in control_pb2_grpc.ControlStub(channel).WatchEvents(
            control_pb2.WatchEventsRequest(), metadata=metadata, timeout=CALL_S)]
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ",".join(kinds)


async def unknown_method(channel: grpc.aio.Channel, metadata=()) -> tuple[grpc.StatusCode, str]:
    call = channel.unary_unary("/headrace.control.v1.Control/DropEverything")
    try:
        await call(b"", metadata=metadata, timeout=CALL_S)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def health_check(channel: grpc.aio.Channel) -> str:
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_S)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


async def reflected_services(channel: grpc.aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    names = []
    async for answer in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                  timeout=CALL_S):
        names += [service.name for service in answer.list_services_response.service]
    return sorted(names)


OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
REFUSED = (UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)


def test_without_a_token_every_call_is_allowed():
    async def test() -> None:
        async with serving() as served, served.channel() as channel:
            assert await list_graphs(channel) == (OK, "orders")
            assert await list_graphs(channel, bearer("anything")) == (OK, "orders")
            assert await tap(channel) == (OK, '{"n": 0} {"n": 1}')
            assert await unknown_method(channel) == (grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
            assert served.control.callers[0].startswith("anonymous@ipv4:127.0.0.1:")
    run(test())


def test_with_a_token_only_the_right_one_passes():
    async def test() -> None:
        async with serving(TOKEN) as served, served.channel() as channel:
            assert await list_graphs(channel) == REFUSED
            assert await list_graphs(channel, bearer("wrong")) == REFUSED
            assert await list_graphs(channel, bearer(TOKEN + "x")) == REFUSED
            assert await list_graphs(channel, bearer(TOKEN, "Basic")) == REFUSED
            assert await list_graphs(channel, (("x-token", TOKEN),)) == REFUSED
            assert served.control.callers == []  # a refused call never reaches the service
            assert await list_graphs(channel, bearer(TOKEN)) == (OK, "orders")
            assert await list_graphs(channel, bearer(TOKEN, "bearer")) == (OK, "orders")
            assert served.control.callers == ["token", "token"]
    run(test())


def test_streaming_and_unknown_methods_are_refused_the_same_way():
    async def test() -> None:
        async with serving(TOKEN) as served, served.channel() as channel:
            assert await tap(channel) == REFUSED
            assert await tap(channel, bearer("wrong")) == REFUSED
            assert await watch(channel) == REFUSED
            assert await unknown_method(channel) == REFUSED  # whether a method exists is not revealed
            assert await unknown_method(channel, bearer("wrong")) == REFUSED
            assert served.control.callers == []
            assert await tap(channel, bearer(TOKEN)) == (OK, '{"n": 0} {"n": 1}')
            assert await watch(channel, bearer(TOKEN)) == (OK, "reload")
            assert await unknown_method(channel, bearer(TOKEN)) == (grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
    run(test())


def test_health_and_reflection_need_no_token():
    async def test() -> None:
        async with serving(TOKEN) as served, served.channel() as channel:
            assert await health_check(channel) == "SERVING"
            assert await reflected_services(channel) == [
                "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "headrace.control.v1.Control"]
    run(test())


def test_tls(tls_files: TlsFiles):
    async def test() -> None:
        credentials = server_credentials(tls_files.server_cert, tls_files.server_key, None)
        async with serving(TOKEN, credentials) as served:
            async with served.channel(tls_files.client_credentials()) as channel:
                assert await list_graphs(channel, bearer(TOKEN)) == (OK, "orders")
                assert await list_graphs(channel) == REFUSED
                assert await health_check(channel) == "SERVING"
            async with served.channel() as plaintext:
                code, _ = await list_graphs(plaintext, bearer(TOKEN))
                assert code == grpc.StatusCode.UNAVAILABLE
            async with served.channel(grpc.ssl_channel_credentials()) as untrusting:  # the system's CAs only
                code, _ = await list_graphs(untrusting, bearer(TOKEN))
                assert code == grpc.StatusCode.UNAVAILABLE
            assert served.control.callers == ["token"]
    run(test())


def test_mutual_tls(tls_files: TlsFiles):
    async def test() -> None:
        credentials = server_credentials(tls_files.server_cert, tls_files.server_key, tls_files.ca)
        async with serving(None, credentials, mutual=True) as served:
            async with served.channel(tls_files.client_credentials()) as no_certificate:
                code, _ = await list_graphs(no_certificate)
                assert code == grpc.StatusCode.UNAVAILABLE
            async with served.channel(tls_files.client_credentials(certificate=True, stranger=True)) as stranger:
                code, _ = await list_graphs(stranger)
                assert code == grpc.StatusCode.UNAVAILABLE
            assert served.control.callers == []
            async with served.channel(tls_files.client_credentials(certificate=True)) as channel:
                assert await list_graphs(channel) == (OK, "orders")
                assert await tap(channel) == (OK, '{"n": 0} {"n": 1}')
                assert await watch(channel) == (OK, "reload")
                assert await health_check(channel) == "SERVING"
            assert served.control.callers == [CLIENT_SUBJECT] * 3
    run(test())


def test_mutual_tls_and_a_token(tls_files: TlsFiles):
    async def test() -> None:
        credentials = server_credentials(tls_files.server_cert, tls_files.server_key, tls_files.ca)
        async with serving(TOKEN, credentials, mutual=True) as served:
            async with served.channel(tls_files.client_credentials(certificate=True)) as channel:
                assert await list_graphs(channel) == REFUSED
                assert await list_graphs(channel, bearer(TOKEN)) == (OK, "orders")
            assert served.control.callers == [CLIENT_SUBJECT]  # the certificate names the caller better
    run(test())


def test_mutual_tls_interceptor_on_a_plaintext_server_refuses():
    """Belt and braces: were the server started without TLS by mistake, calls without a client
    certificate are still refused (health and reflection still answer)."""
    async def test() -> None:
        async with serving(None, None, mutual=True) as served, served.channel() as channel:
            assert await list_graphs(channel) == (UNAUTHENTICATED, NO_CLIENT_CERTIFICATE)
            assert await tap(channel) == (UNAUTHENTICATED, NO_CLIENT_CERTIFICATE)
            assert await watch(channel) == (UNAUTHENTICATED, NO_CLIENT_CERTIFICATE)
            assert await health_check(channel) == "SERVING"
            assert served.control.callers == []
    run(test())


def test_every_refusal_is_reported_with_its_reason():
    """What the audit log hears of: the method and why, for unary, streaming and unknown
    methods; nothing for accepted calls, health or reflection."""
    heard: list[tuple[str, str, str]] = []

    def on_refused(context, method: str, reason: str) -> None:
        heard.append((context.peer().rpartition(":")[0], method, reason))

    async def test() -> None:
        async with serving(TOKEN, on_refused=on_refused) as served, served.channel() as channel:
            assert await list_graphs(channel) == REFUSED
            assert await list_graphs(channel, bearer("wrong")) == REFUSED
            assert await list_graphs(channel, (("authorization", f"Basic {TOKEN}"),)) == REFUSED
            assert await tap(channel, bearer("wrong")) == REFUSED
            assert await watch(channel) == REFUSED
            assert await unknown_method(channel, bearer("wrong")) == REFUSED
            assert await list_graphs(channel, bearer(TOKEN)) == (OK, "orders")
            assert await tap(channel, bearer(TOKEN)) == (OK, '{"n": 0} {"n": 1}')
            assert await health_check(channel) == "SERVING"
            assert len(await reflected_services(channel)) == 3
    run(test())
    control = "/headrace.control.v1.Control/"
    assert heard == [
        ("ipv4:127.0.0.1", control + "ListGraphs", NO_TOKEN),
        ("ipv4:127.0.0.1", control + "ListGraphs", WRONG_TOKEN),
        ("ipv4:127.0.0.1", control + "ListGraphs", NO_TOKEN),  # not a bearer token
        ("ipv4:127.0.0.1", control + "Tap", WRONG_TOKEN),
        ("ipv4:127.0.0.1", control + "WatchEvents", NO_TOKEN),
        ("ipv4:127.0.0.1", control + "DropEverything", WRONG_TOKEN)]


def test_a_missing_client_certificate_is_reported():
    heard: list[tuple[str, str]] = []

    def on_refused(context, method: str, reason: str) -> None:
        heard.append((method, reason))

    async def test() -> None:
        async with serving(None, None, mutual=True, on_refused=on_refused) as served, served.channel() as channel:
            assert await list_graphs(channel) == (UNAUTHENTICATED, NO_CLIENT_CERTIFICATE)
            assert await tap(channel) == (UNAUTHENTICATED, NO_CLIENT_CERTIFICATE)
            assert await health_check(channel) == "SERVING"
    run(test())
    assert heard == [("/headrace.control.v1.Control/ListGraphs", NO_CERTIFICATE),
                     ("/headrace.control.v1.Control/Tap", NO_CERTIFICATE)]


class StubContext:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self.auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth

    def peer(self) -> str:
        return "ipv6:[::1]:40000"


def test_principal_prefers_the_certificate_then_the_token():
    certificate = {"x509_pem_cert": [b"-----BEGIN CERTIFICATE-----..."], "transport_security_type": [b"ssl"]}
    assert principal(StubContext({**certificate, "x509_subject": [b"CN=ops,O=Acme"]}), True) == "CN=ops,O=Acme"
    assert principal(StubContext({**certificate, "x509_common_name": [b"ops"]}), False) == "CN=ops"
    assert principal(StubContext({"transport_security_type": [b"ssl"]}), True) == "token"
    assert principal(StubContext({}), False) == "anonymous@ipv6:[::1]:40000"
