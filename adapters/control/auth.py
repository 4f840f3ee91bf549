"""Who may call the control plane: the bind rule, TLS credentials, the bearer token, the caller's name.

- `check_bind` refuses to serve without a token anywhere but loopback.
- `server_credentials` reads the TLS files named by the settings (mutual TLS with a client CA).
- `TokenInterceptor` requires `authorization: Bearer <token>` on every call but health and
  reflection, and answers every refusal the same way, whatever was asked for; it tells
  `on_refused` (the audit log) who was refused and why, never what they sent.
- `principal` names the caller for the audit log.
"""

import hmac
import inspect
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio

if TYPE_CHECKING:  # the stubs are generic, the runtime classes are not
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler

LOG: Final = logging.getLogger("headrace.control")

HEALTH_AND_REFLECTION: Final = frozenset({
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
})

# One answer for every refused call: it never says whether the token was missing or wrong,
# nor whether the method or graph asked for exists.
UNAUTHENTICATED_MESSAGE: Final = "unauthenticated: send the control token as 'authorization: Bearer <token>' metadata"
NO_CLIENT_CERTIFICATE: Final = "unauthenticated: a client certificate is required"

# Why a call was refused, for the audit log only (the caller always gets the one message above).
NO_TOKEN: Final = "no token"
WRONG_TOKEN: Final = "wrong token"
NO_CERTIFICATE: Final = "no client certificate"

TOKEN_VARIABLE: Final = "HEADRACE_CONTROL_TOKEN"
CERT_VARIABLE: Final = "HEADRACE_CONTROL_TLS_CERT"
KEY_VARIABLE: Final = "HEADRACE_CONTROL_TLS_KEY"
CLIENT_CA_VARIABLE: Final = "HEADRACE_CONTROL_CLIENT_CA"

_BEARER: Final = "bearer "


class ControlSecurityError(Exception):
    """The control plane cannot start as configured; the message is one line naming the fix."""


def is_loopback(address: str) -> bool:
    """Whether `address` (`HOST:PORT`, `[V6]:PORT`) binds to loopback only: 127.0.0.0/8, ::1,
    `localhost`. Host names are not resolved (what they resolve to can change)."""
    host = address.rpartition(":")[0] if ":" in address else address
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def check_bind(address: str, token: str | None, tls: bool) -> None:
    """Refuse (ControlSecurityError) to serve without a token on an address that is not loopback.

    With a token but without TLS on such an address, serving goes on with a warning: the token
    crosses the network in clear text (fine behind a TLS-terminating proxy or mesh, not otherwise)."""
    if is_loopback(address):
        return
    if not token:
        raise ControlSecurityError(
            f"refusing to serve the control plane on {address} without a token: "
            f"set {TOKEN_VARIABLE}, or bind to 127.0.0.1")
    if not tls:
        LOG.warning("the control plane on %s is plaintext: its token crosses the network in clear text; "
                    "set %s and %s, or keep it behind a proxy that terminates TLS",
                    address, CERT_VARIABLE, KEY_VARIABLE)


def server_credentials(cert: Path | None, key: Path | None, client_ca: Path | None) -> grpc.ServerCredentials | None:
    """None for plaintext; TLS with `cert` and `key`; mutual TLS (clients must present a
    certificate `client_ca` signed) when `client_ca` is set too.

    The files are read and checked now (PEM, the key matches the certificate), so that a
    mistake stops the start with one line naming the setting, not a failure at the first call."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ControlSecurityError(
                f"{CLIENT_CA_VARIABLE} is set but {CERT_VARIABLE} and {KEY_VARIABLE} are not: "
                "mutual TLS needs the server's own certificate and key too")
        return None
    if cert is None or key is None:
        given, missing = (CERT_VARIABLE, KEY_VARIABLE) if cert is not None else (KEY_VARIABLE, CERT_VARIABLE)
        raise ControlSecurityError(f"{given} is set but {missing} is not: TLS needs both the certificate and its key")
    cert_pem = _read_pem(cert, CERT_VARIABLE, "CERTIFICATE", "a PEM certificate")
    key_pem = _read_pem(key, KEY_VARIABLE, "PRIVATE KEY", "a PEM private key")
    if b"ENCRYPTED" in key_pem:
        raise ControlSecurityError(f"{KEY_VARIABLE}: {key} is encrypted; give the key without a passphrase "
                                   "(keep the file readable by the engine only)")
    _check_pair(cert, key)
    if client_ca is None:
        return grpc.ssl_server_credentials([(key_pem, cert_pem)])
    ca_pem = _read_pem(client_ca, CLIENT_CA_VARIABLE, "CERTIFICATE", "a PEM CA certificate")
    _check_ca(client_ca)
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True)


def _read_pem(path: Path, variable: str, label: str, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ControlSecurityError(f"{variable}: no such file: {path}") from None
    except IsADirectoryError:
        raise ControlSecurityError(f"{variable}: {path} is a directory; name {what} file") from None
    except OSError as exc:
        raise ControlSecurityError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data or label.encode() + b"-----" not in data:
        raise ControlSecurityError(f"{variable}: {path} is not {what} (no '-----BEGIN ...{label}-----' block)")
    return data


def _check_pair(cert: Path, key: Path) -> None:
    """The certificate parses and the key is its key (OpenSSL, through the standard library)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ControlSecurityError(f"{KEY_VARIABLE}: {key} is not the key of the certificate in {cert}") from None
        raise ControlSecurityError(
            f"{CERT_VARIABLE}, {KEY_VARIABLE}: {cert} and {key} are not a usable PEM certificate and key "
            f"({exc.reason or exc})") from None


def _check_ca(client_ca: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=client_ca)
    except ssl.SSLError as exc:
        raise ControlSecurityError(f"{CLIENT_CA_VARIABLE}: {client_ca} is not a usable PEM CA certificate "
                                   f"({exc.reason or exc})") from None


def _no_password() -> bytes:
    return b""  # never prompt on a terminal for an encrypted key; it then fails to load


# --- the interceptor -----------------------------------------------------------------------

Behavior = Callable[..., Any]
# Told of each refused call: (the call's context, the method path, the reason), before it is answered.
OnRefused = Callable[["grpc.aio.ServicerContext[Any, Any]", str, str], None]


def _token_refusal(metadata: Sequence[tuple[str, str | bytes]] | None, expected: bytes) -> str | None:
    """None when an `authorization: Bearer <token>` entry carries the expected token (compared in
    constant time; the scheme's case does not matter); else NO_TOKEN or WRONG_TOKEN."""
    found = offered = False
    for name, value in metadata or ():
        if name != "authorization" or not isinstance(value, str) or not value.lower().startswith(_BEARER):
            continue
        offered = True
        found = hmac.compare_digest(value[len(_BEARER):].strip().encode("utf-8"), expected) or found
    if found:
        return None
    return WRONG_TOKEN if offered else NO_TOKEN


def _exempt(method: str) -> bool:
    return any(method.startswith(prefix) for prefix in HEALTH_AND_REFLECTION)


def _refusal(handler: Handler | None, message: str, method: str, reason: str,
             on_refused: OnRefused | None) -> Handler:
    """A handler of the same kind as `handler` (unary_unary for an unknown method) that answers
    UNAUTHENTICATED without running anything or reading more than the request."""

    async def refuse(request_or_iterator: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if on_refused is not None:
            on_refused(context, method, reason)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    request_streaming = handler is not None and handler.request_streaming
    response_streaming = handler is not None and handler.response_streaming
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


def _has_client_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    return bool(context.auth_context().get("x509_pem_cert"))


def _guarded(behavior: Behavior, method: str, on_refused: OnRefused | None) -> Behavior:
    """`behavior`, run only for a caller that presented a client certificate."""

    async def check(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not _has_client_certificate(context):
            if on_refused is not None:
                on_refused(context, method, NO_CERTIFICATE)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, NO_CLIENT_CERTIFICATE)

    if inspect.isasyncgenfunction(behavior):
        async def guarded_stream(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await check(context)
            async for item in behavior(request, context):
                yield item
        return guarded_stream

    async def guarded(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await check(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result
    return guarded


def _with_certificate_check(handler: Handler, method: str, on_refused: OnRefused | None) -> Handler:
    """`handler`, refusing callers without a client certificate (mutual TLS, checked twice)."""
    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
    )
    for behavior, make in kinds:
        if behavior is not None:
            return make(_guarded(behavior, method, on_refused), request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    return handler


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Every call but health and reflection must carry `authorization: Bearer <token>` when a
    token is set; otherwise it is answered UNAUTHENTICATED, with one message for every method,
    known or not, so a refused caller learns nothing. With `mutual_tls`, the TLS handshake has
    already refused clients without a valid certificate; the interceptor checks again that a
    client certificate was presented, so a server started without TLS by mistake refuses too.
    `on_refused` hears of every refusal (with why), before it is answered."""

    def __init__(self, token: str | None, mutual_tls: bool, on_refused: OnRefused | None = None) -> None:
        self._token = token.encode("utf-8") if token else None
        self._mutual_tls = mutual_tls
        self._on_refused = on_refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        if _exempt(method):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if self._token is not None:
            metadata = handler_call_details.invocation_metadata
            reason = _token_refusal(metadata, self._token)
            if reason is not None:
                return _refusal(handler, UNAUTHENTICATED_MESSAGE, method, reason, self._on_refused)
        if self._mutual_tls and handler is not None:
            return _with_certificate_check(handler, method, self._on_refused)
        return handler


def principal(context: grpc.aio.ServicerContext[Any, Any], token_set: bool) -> str:
    """Who called, for the audit log: the client certificate's subject under mutual TLS
    (`CN=ops,O=Acme`), else `token` when the call passed the token check, else
    `anonymous@<peer>` (`anonymous@ipv4:127.0.0.1:53122`)."""
    auth = context.auth_context()
    subject = _first(auth.get("x509_subject"))
    if subject:
        return subject
    common_name = _first(auth.get("x509_common_name"))
    if common_name and auth.get("x509_pem_cert"):
        return f"CN={common_name}"
    if token_set:
        return "token"
    return f"anonymous@{context.peer()}"


def _first(values: Iterable[bytes] | None) -> str:
    value = next(iter(values), None) if values is not None else None
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
