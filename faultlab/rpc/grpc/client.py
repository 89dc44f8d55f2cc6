"""GrpcClient: a synchronous client that never retries (the policy under test does)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.protobuf import message  # type: ignore[import-untyped]

from faultlab.errors import RemoteProtocolError
from faultlab.rpc.channel import MAX_MESSAGE
from faultlab.rpc.client import CallingClient
from faultlab.rpc.errors import InvalidParams, MethodNotFound
from faultlab.rpc.grpc.address import channel_credentials, host_target, parse_address, unix_target
from faultlab.rpc.grpc.convert import CONVERSION_ERRORS, params_to_request, reply_to_python
from faultlab.rpc.grpc.schema import RpcMethod, load_schema, rpc_name
from faultlab.rpc.grpc.status import IDEMPOTENCY_KEY, error_from

__all__ = ["GrpcClient"]


class GrpcClient(CallingClient):
    """A synchronous gRPC client; never retries (grpcio's retries are switched off)."""

    def __init__(
        self,
        address: str,
        *,
        proto: str | ModuleType | Any = "v1",
        timeout: float = 10.0,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.address = address
        self.schema = load_schema(proto)
        self.timeout = timeout
        parsed = parse_address(address)
        options = [
            ("grpc.enable_retries", 0),  # retrying is the policy under test, not grpcio's
            ("grpc.use_local_subchannel_pool", 1),  # own connection: faults stay per client
            ("grpc.max_send_message_length", max_message),
            ("grpc.max_receive_message_length", max_message),
        ]
        if parsed.scheme == "unix":
            self._channel = grpc.insecure_channel(unix_target(parsed)[0], options=options)
        elif parsed.scheme == "tls":
            credentials = channel_credentials(parsed)
            target = host_target(parsed)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(host_target(parsed), options=options)
        self._stubs: dict[str, Any] = {}

    def _stub(self, rpc: RpcMethod) -> Any:
        stub = self._stubs.get(rpc.name)
        if stub is None:
            try:  # bytes in, bytes out: we decode; registered: grpcio resolves the path once
                stub = self._channel.unary_unary(rpc.path, _registered_method=True)
            except TypeError:  # grpcio < 1.63
                stub = self._channel.unary_unary(rpc.path)
            self._stubs[rpc.name] = stub
        return stub

    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` (``"add"``, ``"counter.incr"`` or ``"CounterIncr"``).

        Raises :class:`RpcError` subclasses: :class:`MethodNotFound` for a method
        the client's proto (or the server) lacks, :class:`InvalidParams` for
        arguments the request message cannot hold exactly, the server's kind for
        error replies, and :class:`ServiceUnavailable` / :class:`DeadlineExceeded`
        for connection failures and timeouts. An unreadable reply raises
        ``RemoteProtocolError``.
        """
        rpc = self.schema.methods.get(rpc_name(method)) or self.schema.methods.get(method)
        if rpc is None:
            raise MethodNotFound(f"no method {method!r} in {self.schema.full_name} (client proto)")
        try:
            request = params_to_request(rpc.request, args, kwargs)
        except CONVERSION_ERRORS as exc:
            raise InvalidParams(f"{method}: {exc}") from None
        metadata = ((IDEMPOTENCY_KEY, idempotency_key),) if idempotency_key else None
        try:
            data = self._stub(rpc)(
                request.SerializeToString(),
                timeout=self.timeout if timeout is None else timeout,
                metadata=metadata,
            )
        except grpc.RpcError as exc:
            raise error_from(exc) from None
        try:
            reply = rpc.reply.FromString(data)
        except message.DecodeError as exc:
            raise RemoteProtocolError(
                f"{method}: unreadable {rpc.reply.DESCRIPTOR.full_name}"
            ) from exc
        return reply_to_python(reply)

    def close(self) -> None:
        self._channel.close()
