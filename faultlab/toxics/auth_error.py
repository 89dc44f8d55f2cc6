"""``auth_error``: answer matching requests with 401 and a ``WWW-Authenticate`` challenge.

Why: a client holding an access token must cope with the server rejecting it (it expired,
it was revoked): refresh once, retry the failed call once, and never hammer the server with
the rejected token. Black-box, that needs a server that rejects tokens on cue, which is
this toxic. On a proxy with ``framing="http"`` (upstream) the selected requests get a 401
with ``WWW-Authenticate: Bearer realm="<realm>", error="invalid_token"``; on a gRPC proxy
(``protocol="grpc"``) a trailers-only ``UNAUTHENTICATED`` (16) with the same challenge in a
``www-authenticate`` metadata. The server never sees them.

Which requests: those matching the ``match_*`` attributes (:mod:`faultlab.toxics._match`),
then either

- the selection (``nth``, ``times``, ``sequence``, ``every``, counted per ``scope``), or
- ``after_ms``: the credentials in use before it (seen on this proxy since the toxic was
  added or updated) *expire* at it; a credential first seen later (a refreshed one) passes.

With ``revoke`` (the default) a credential once answered 401 keeps getting 401 on every
later request (proxy-wide, whatever the selection says), so a client that retries with the
same token keeps failing while a refreshed one succeeds; without it only the selected
requests (with ``after_ms``: the first request of each expired credential) get 401. No
``Authorization`` counts as one credential, "none". Credentials are compared by their
fingerprint (:func:`faultlab.journal.wire.credential_fingerprint`), never kept in clear.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any

from faultlab.codecs.framing.h2 import grpc_message_text, injected_headers
from faultlab.codecs.framing.httpinfo import HttpHeadInfo
from faultlab.journal import wire as wk
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics import _rpcwire as rpcwire
from faultlab.toxics._match import MATCH_ATTRIBUTES, TOKEN, RequestMatcher
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    InvalidToxic,
    Toxic,
    ToxicContext,
    register_toxic,
)
from faultlab.toxics.http_error import _connection, read_request, render_response

__all__ = ["UNAUTHENTICATED", "AuthError", "challenge"]

UNAUTHENTICATED = 16
"""The gRPC status a server answers a missing or bad credential with."""
MAX_AFTER_MS = 86_400_000
MAX_CREDENTIALS = 10_000
"""Credentials the toxic remembers per proxy (seen, revoked); the oldest is forgotten past it."""
MAX_REALM = 256
_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
"""Visible ASCII and spaces but ``"`` and ``\\``: sent as a quoted string unescaped."""
_ERROR = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{0,64}")
"""RFC 6750's ``error`` value: NQCHARs (``invalid_token``, ``invalid_request``...)."""
_NONE = ""
"""The key of "no credential at all"."""


def challenge(scheme: str, realm: str, error: str) -> str:
    """The ``WWW-Authenticate`` value: ``Bearer realm="api", error="invalid_token"``."""
    params = [f'realm="{realm}"']
    if error:
        params.append(f'error="{error}"')
    return f"{scheme} {', '.join(params)}"


def _check(toxic: str, attributes: dict[str, Any]) -> None:
    scheme: str = attributes["scheme"]
    if not TOKEN.fullmatch(scheme) or len(scheme) > 32:
        raise InvalidToxic(
            f"{toxic}: attribute 'scheme' is an auth scheme name (Bearer, Basic, DPoP...), "
            f"one word of at most 32 letters, digits or !#$%&'*+-.^_`|~; got {scheme!r}"
        )
    realm: str = attributes["realm"]
    if len(realm) > MAX_REALM or not _REALM.fullmatch(realm):
        raise InvalidToxic(
            f"{toxic}: attribute 'realm' is sent as a quoted string: at most {MAX_REALM} "
            f"visible ASCII characters or spaces, without '\"' or '\\'; got {realm!r}"
        )
    if not _ERROR.fullmatch(attributes["error"]):
        raise InvalidToxic(
            f"{toxic}: attribute 'error' is an RFC 6750 error code (invalid_token, "
            f"invalid_request, insufficient_scope; empty: none), at most 64 visible ASCII "
            f"characters without spaces, '\"' or '\\'; got {attributes['error']!r}"
        )
    if attributes["after_ms"]:
        chosen = [n for n in ("nth", "times", "sequence") if attributes.get(n)]
        if attributes.get("every", 1) != 1:
            chosen.append("every")
        if chosen:
            raise InvalidToxic(
                f"{toxic}: after_ms cannot combine with {' and '.join(chosen)}: after_ms "
                "expires the credentials in use at that time, while nth, times, sequence "
                "and every select requests; set one or the other"
            )


class _Memory:
    """Per proxy: the credentials seen before ``after_ms`` and those revoked (bounded)."""

    __slots__ = ("revoked", "seen")

    def __init__(self) -> None:
        self.seen: dict[str, None] = {}
        self.revoked: dict[str, None] = {}

    @staticmethod
    def add(found: dict[str, None], key: str) -> None:
        found.pop(key, None)
        found[key] = None
        while len(found) > MAX_CREDENTIALS:
            del found[next(iter(found))]


@register_toxic
class AuthError(Toxic):
    type_name = "auth_error"
    description = (
        "answer matching requests with 401 and a WWW-Authenticate challenge (gRPC: "
        "UNAUTHENTICATED), selected or once credentials expire (after_ms)"
    )
    needs_frames = True
    h2_aware = True
    attributes_spec = {
        "realm": Attr(str, "faultlab", help="the challenge's realm"),
        "scheme": Attr(str, "Bearer", help="the challenge's auth scheme (Bearer, Basic...)"),
        "error": Attr(
            str, "invalid_token", help="the challenge's RFC 6750 error code (empty: none)"
        ),
        "after_ms": Attr(
            int,
            0,
            0,
            MAX_AFTER_MS,
            "credentials in use before this many ms expire at it (0: use the selection)",
            options=(0,),
        ),
        "revoke": Attr(
            bool,
            True,
            help="a credential once answered 401 keeps failing (false: only selected requests)",
            options=(False, True),
        ),
        **MATCH_ATTRIBUTES,
    }

    def __init__(self, **attributes: Any) -> None:
        self.started = time.monotonic()
        """When the toxic was added (an update makes a new one): ``after_ms`` counts from it."""
        super().__init__(**attributes)

    def validate(self, attributes: dict[str, Any]) -> None:
        _check(self.type_name, attributes)
        RequestMatcher.from_attributes(self.type_name, attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        super().update(attributes)
        attrs = self.attributes
        self.matcher = RequestMatcher.from_attributes(self.type_name, attrs)
        self.challenge = challenge(attrs["scheme"], attrs["realm"], attrs["error"])

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if framing not in ("http", "h2") or message_based:
            return (
                'it answers HTTP requests: create the proxy with framing="http" '
                '(or protocol="grpc" for gRPC)'
            )
        if stream != "upstream":
            return (
                "it answers requests, which travel on the upstream stream (the downstream "
                'stream carries responses): add it with stream="upstream"'
            )
        if self.matcher.needs_rpc and framing == "http":
            if protocol is None:
                return (
                    "match_rpc_method reads the RPC method with the proxy's protocol: create "
                    f"the proxy with protocol=... ({'|'.join(rpcwire.protocols())})"
                )
            return rpcwire.protocol_reason(protocol, framing, message_based)
        return self.matcher.unsupported_reason(stream=stream, framing=framing)

    # ---- deciding ----------------------------------------------------------------------
    def _decide(
        self,
        ctx: ToxicContext,
        chunk: Chunk,
        head: HttpHeadInfo,
        methods: Iterable[str] | None,
        fields: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Why this request gets 401 (``reason``, ``match``), or ``None`` once its pass is
        journaled."""
        why = self.matcher.mismatch(head, methods)
        if why is not None:
            ctx.record("pass", chunk, reason=why, **fields)
            return None
        auth = head.header("authorization")
        key = wk.credential_fingerprint(auth) if auth and auth.strip() else _NONE
        fields["credential"] = key or None
        memory: _Memory = ctx.shared.setdefault("auth_memory", _Memory())
        revoke: bool = self.attributes["revoke"]
        if revoke and key in memory.revoked:
            return {"reason": "revoked"}
        after: int = self.attributes["after_ms"]
        if after:
            elapsed = int((time.monotonic() - self.started) * 1000)
            if elapsed < after:
                memory.add(memory.seen, key)
                ctx.record("pass", chunk, reason="after_ms", elapsed_ms=elapsed, **fields)
                return None
            if key not in memory.seen:
                ctx.record("pass", chunk, reason="fresh credential", elapsed_ms=elapsed, **fields)
                return None
            del memory.seen[key]  # expired once: with revoke it stays revoked, else it is fresh
            outcome: dict[str, Any] = {"reason": "expired", "elapsed_ms": elapsed}
        else:
            fire, n = self.matcher.fire(ctx)
            if not fire:
                ctx.record("pass", chunk, reason=self.matcher.selection, match=n, **fields)
                return None
            outcome = {"reason": "selected", "match": n}
        if revoke:
            memory.add(memory.revoked, key)
        return outcome

    # ---- answering ---------------------------------------------------------------------
    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        if ctx.h2 is not None:
            if not await self._grpc(ctx, chunk, emit):
                await emit(chunk)
            return
        request = read_request(ctx, chunk, self.matcher)
        if request is None:
            await emit(chunk)
            return
        head, methods, fields = request
        outcome = self._decide(ctx, chunk, head, methods, fields)
        if outcome is None:
            await emit(chunk)
            return
        close, connection = _connection(chunk.data, head)
        body = json.dumps({"error": "unauthorized (injected)"}).encode()
        headers = (("WWW-Authenticate", self.challenge), ("Content-Type", "application/json"))
        data = render_response(
            401, headers, body, head_request=head.method == "HEAD", connection=connection
        )
        ctx.record("auth_error", chunk, status=401, closed=close, **outcome, **fields)
        ctx.reply(data)
        if close:
            ctx.close_connection()

    async def _grpc(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> bool:
        """A call starting: answered with a trailers-only UNAUTHENTICATED, its stream never
        reaching the server, or forwarded. ``False``: not a call starting."""
        found = grpcwire.request_head(chunk)
        if found is None:
            return False
        unit, head = found
        path = head.target or ""
        fields: dict[str, Any] = {"method": path, "stream": unit.stream, "protocol": "grpc"}
        outcome = self._decide(ctx, chunk, head, [path], fields)
        if outcome is None:
            await emit(chunk)
            return True
        ctx.record(
            "auth_error", chunk, grpc_status=UNAUTHENTICATED, replied=True, **outcome, **fields
        )
        reply = injected_headers(
            unit.stream,
            [
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", str(UNAUTHENTICATED)),
                ("grpc-message", grpc_message_text("unauthenticated (injected)")),
                ("www-authenticate", self.challenge),
            ],
            end_stream=True,
        )
        ctx.h2.refuse(unit.stream, reply)
        return True
