"""The control plane's gRPC server inside `engine serve`: the Control service, the standard
health service (SERVING while serving, NOT_SERVING from the first stop signal on) and
server reflection, behind the token and TLS settings. With an audit log, refused calls are
written to it too, within the limits of `refusals`."""

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from adapters.control.audit import AuditLog
from adapters.control.auth import ControlSecurityError, TokenInterceptor, check_bind, principal, server_credentials
from adapters.control.diagnostics import LogView
from adapters.control.refusals import WINDOW_S, RefusedAttempts
from adapters.control.service import ControlService
from adapters.control.v1 import control_pb2, control_pb2_grpc
from adapters.serve.host import Host
from adapters.serve.logs import RecentLines
from adapters.serve.server import Server

SERVICE: Final = "headrace.control.v1.Control"


class ControlPlane:
    def __init__(self, address: str, token: str | None, cert: Path | None, key: Path | None,
                 client_ca: Path | None, audit_log: Path | None, server: Server, host: Host,
                 drain_timeout_s: float, refusal_window_s: float = WINDOW_S,
                 recent: RecentLines | None = None) -> None:
        self.address = address
        self.token = token
        self.credentials = server_credentials(cert, key, client_ca)
        check_bind(address, token, self.credentials is not None)
        self.mutual = client_ca is not None
        self.audit = AuditLog(audit_log) if audit_log is not None else None
        self.refusals = RefusedAttempts(self.audit, refusal_window_s) if self.audit is not None else None
        self._summaries: asyncio.Task[None] | None = None
        self.service = ControlService(server, host, self.audit, token is not None, drain_timeout_s,
                                      LogView(host, recent, token))
        self.health = health.aio.HealthServicer()
        self.grpc: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        on_refused = self._refused if self.refusals is not None else None
        server = grpc.aio.server(interceptors=[TokenInterceptor(self.token, self.mutual, on_refused)])
        control_pb2_grpc.add_ControlServicer_to_server(self.service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (control_pb2.DESCRIPTOR.services_by_name["Control"].full_name,
                 health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        try:
            if self.credentials is not None:
                self.port = server.add_secure_port(self.address, self.credentials)
            else:
                self.port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise ControlSecurityError(f"cannot listen on {self.address} for the control plane: {exc}") from None
        if self.port == 0:
            raise ControlSecurityError(f"cannot listen on {self.address} for the control plane (address in use?); "
                                       "set HEADRACE_CONTROL_ADDRESS")
        await server.start()
        self.grpc = server
        if self.refusals is not None:
            self._summaries = asyncio.ensure_future(self._write_summaries(self.refusals))
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)

    async def not_serving(self) -> None:
        """From the first stop signal: health checks fail while the graphs drain."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace_s: float = 1.0) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace_s)
        if self._summaries is not None:
            self._summaries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._summaries
            self._summaries = None
        if self.refusals is not None:
            self.refusals.close()  # what the last window counted is written before the engine exits

    def _refused(self, context: "grpc.aio.ServicerContext[Any, Any]", method: str, reason: str) -> None:
        assert self.refusals is not None
        self.refusals.refused(principal(context, token_set=False), context.peer(), method, reason)

    @staticmethod
    async def _write_summaries(refusals: RefusedAttempts) -> None:
        """Each window's summary of the refused calls it did not write, as the window ends."""
        while True:
            await asyncio.sleep(refusals.seconds_left() + 0.01)
            refusals.flush()
