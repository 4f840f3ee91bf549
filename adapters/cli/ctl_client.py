"""The gRPC side of `engine ctl`: one channel, the bearer token, TLS, and what each failure
means to the operator (a message and an exit code). Only `engine ctl` imports this module,
so the other commands never load grpc."""

import argparse
import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from adapters.cli.ctl_common import ADDRESS_VARIABLE, TOKEN_VARIABLE, Refusal, resolve_address, resolve_token
from adapters.cli.exit_codes import EXIT_PROBLEMS, EXIT_UNREACHABLE, EXIT_USAGE
from adapters.control.v1 import control_pb2, control_pb2_grpc

TLS_WORDS = ("ssl", "tls", "handshake", "certificate")
PROBE_S = 1.0  # how long `_answers` waits


def _read(option: str, file: str, label: str, what: str) -> bytes:
    """A PEM file's bytes; checked here, since gRPC would only fail the handshake, vaguely."""
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise Refusal(f"cannot read {option} {file}: {exc.strerror or exc}", EXIT_USAGE) from None
    if b"-----BEGIN " not in data or f"{label}-----".encode() not in data:
        raise Refusal(f"{option} {file} is not {what} (no '-----BEGIN ...{label}-----' block)", EXIT_USAGE)
    return data


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS when --ca or a client certificate is given; None: plaintext."""
    if (args.cert is None) != (args.key is None):
        raise Refusal("--cert and --key go together (the client certificate and its private key)", EXIT_USAGE)
    if args.ca is None and args.cert is None:
        return None
    ca = _read("--ca", args.ca, "CERTIFICATE", "a PEM CA certificate") if args.ca is not None else None
    cert = _read("--cert", args.cert, "CERTIFICATE", "a PEM certificate") if args.cert is not None else None
    key = _read("--key", args.key, "PRIVATE KEY", "a PEM private key") if args.key is not None else None
    if args.cert is not None:
        _check_pair(args.cert, args.key)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def _check_pair(cert: str, key: str) -> None:
    """The key is the certificate's key (OpenSSL, through the standard library)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise Refusal(f"--key {key} is not the key of --cert {cert}", EXIT_USAGE) from None
        raise Refusal(f"--cert {cert} and --key {key} are not a usable certificate and key ({exc.reason or exc})",
                      EXIT_USAGE) from None


class Connection:
    """A channel to the control plane, the calls made on it, and their failures as Refusals."""

    pb = control_pb2

    def __init__(self, address: str, token: str, credentials: grpc.ChannelCredentials | None,
                 timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self.tls = credentials is not None
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        if credentials is None:
            self.channel = grpc.insecure_channel(address)
        else:
            self.channel = grpc.secure_channel(address, credentials)
        self.stub = control_pb2_grpc.ControlStub(self.channel)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        token = resolve_token(args.token)
        if any(not " " <= ch <= "~" for ch in token):
            raise Refusal(f"the token (--token or ${TOKEN_VARIABLE}) must be printable ASCII", EXIT_USAGE)
        return cls(resolve_address(args.address), token, _credentials(args), args.timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.channel.close()

    def call(self, method: Callable[..., Any], request: Any, timeout: float | bool | None = True) -> Any:
        """`method(request)`, due within --timeout (True), `timeout` seconds, or whenever (None)."""
        seconds = self.timeout if timeout is True else timeout
        try:
            return method(request, timeout=seconds, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise self.refusal(exc, seconds) from None

    def stream(self, method: Callable[..., Any], request: Any, show: Callable[[Any], None], limit: int) -> bool:
        """Shows each item of a server stream until `limit` items (0: no limit) or Ctrl-C (True),
        or until the server ends the stream (False)."""
        call = method(request, metadata=self.metadata)
        shown = 0
        try:
            for item in call:
                show(item)
                shown += 1
                if shown == limit:
                    return True
        except KeyboardInterrupt:
            return True  # the operator has seen enough: a normal end
        except grpc.RpcError as exc:
            raise self.refusal(exc, None) from None
        finally:
            call.cancel()
        return False

    def health(self) -> str:
        """The serving status of the whole server (service ""), e.g. SERVING; no token needed."""
        from grpc_health.v1 import health_pb2

        try:
            answer = self._check_health(self.timeout)
        except grpc.RpcError as exc:
            raise self.refusal(exc, self.timeout) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    def _check_health(self, timeout: float) -> Any:
        """One health check of the whole server (service "")."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        # The types of grpcio-health-checking declare no methods on HealthStub.
        stub: Any = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)

    def _answers(self) -> bool:
        """Whether the server answers at all (a health check, any answer), after a call ran out
        of time: a slow server is not an unreachable one. (Watching the channel's connectivity
        instead costs a polling thread per command.)"""
        try:
            self._check_health(min(self.timeout, PROBE_S))
        except grpc.RpcError as exc:
            return isinstance(exc, grpc.Call) and exc.code() not in (
                grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        return True

    def refusal(self, exc: grpc.RpcError, seconds: float | None) -> Refusal:
        """What a failed call means: unreachable (exit 2) or refused by the server (exit 1)."""
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or code.name
        within = f" within {seconds:g} s" if seconds else ""
        timed_out = code == grpc.StatusCode.DEADLINE_EXCEEDED
        if code == grpc.StatusCode.UNAVAILABLE or (timed_out and not self._answers()):
            if timed_out:
                details = f"no connection{within}"
            # A failed TLS handshake and a TLS server hanging up on plaintext both read "Socket closed".
            closed = "socket closed" in details.lower()
            if any(word in details.lower() for word in TLS_WORDS) or (self.tls and closed):
                hint = "does the server use TLS with this CA and accept this certificate? see --ca, --cert, --key"
            elif closed:
                hint = "the server closed the connection: if it uses TLS, give --ca"
            else:
                hint = f"is engine serve running? see {ADDRESS_VARIABLE}"
            message = f"cannot reach the control plane at {self.address}: {details} ({hint})"
            return Refusal(message, EXIT_UNREACHABLE)
        first, *more = details.splitlines() or [code.name]
        if code == grpc.StatusCode.UNAUTHENTICATED:
            check = "--cert / --key" if "certificate" in first.lower() else f"--token / {TOKEN_VARIABLE}"
            first += f"; check {check}"
        elif timed_out:
            first = f"no answer from the control plane at {self.address}{within}; try a longer --timeout"
        return Refusal(first, EXIT_PROBLEMS, more)
