"""AWS Signature Version 4 verification of a door call (service `mturk-requester`, any region).

The signature is recomputed with botocore's own signer (`SigV4Auth`) over what the client
signed: the method, the path and query as sent, exactly the headers named in `SignedHeaders`
(with the Host as sent: behind a proxy the client signed the proxy's host name), and the SHA-256
of the raw body bytes; then compared in constant time. The checks, in order, each with the
error AWS JSON services answer (botocore turns each into a `ClientError` of that code):

- no `Authorization`: MissingAuthenticationTokenException;
- not AWS4-HMAC-SHA256, malformed, no X-Amz-Date: IncompleteSignatureException;
- scope of another service or day, X-Amz-Date more than 5 minutes from our clock ("Signature
  expired" / "Signature not yet current"), a signature that differs (wrong secret, tampered
  body or signed header): InvalidSignatureException;
- an access key that is unknown or revoked: UnrecognizedClientException.

All are HTTP 400 with `{"__type", "message"}`, as AWS JSON services answer them.

Cost: the key lookup is cached per process (shared.mturk_credentials); the signing key of
(secret, day, region) is cached too, so a verification is one canonical request, two SHA-256
and one HMAC-SHA256 (bench/mturk.py measures it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from starlette.requests import Request

from shared.database import Database
from shared.mturk_credentials import MTurkPrincipal, resolve_access_key

SERVICE_NAME = "mturk-requester"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class MTurkAuthError(Exception):
    """Refused before any operation runs (HTTP 400, the AWS JSON error shape)."""

    def __init__(self, type_name: str, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.status_code = status_code

    def body(self) -> dict[str, Any]:
        return {"__type": self.type_name, "message": self.message, "Message": self.message}


class _VerifyingSigner(SigV4Auth):
    """botocore's signer, told which headers the client signed and the body's real hash."""

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        signed_headers: list[str],
        body_sha256: str,
        signing_key: bytes,
    ) -> None:
        super().__init__(credentials, SERVICE_NAME, region)
        self._signed = signed_headers
        self._body_sha256 = body_sha256
        self._signing_key = signing_key

    def headers_to_sign(self, request: AWSRequest) -> Any:
        # Exactly the client's list: botocore's own choice would drop e.g. user-agent, which
        # another SDK may sign, and add host when the client did not sign it (refused before).
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                headers[name.lower()] = value
        return headers

    def payload(self, request: AWSRequest) -> str:
        return self._body_sha256

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        return hmac.new(self._signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


class _SigningKeys:
    """kSigning for (secret, day, region): four HMACs saved per call; a few entries."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._keys: OrderedDict[tuple[str, str, str, str], bytes] = OrderedDict()
        self._max = max_entries

    def get(self, access_key_id: str, secret: str, day: str, region: str) -> bytes:
        cache_key = (access_key_id, secret, day, region)
        key = self._keys.get(cache_key)
        if key is None:
            k = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
            for part in (region, SERVICE_NAME, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            key = k
            self._keys[cache_key] = key
            if len(self._keys) > self._max:
                self._keys.popitem(last=False)
        return key


_signing_keys = _SigningKeys()


def _parse_authorization(request: Request) -> tuple[str, str, str, list[str], str]:
    header = request.headers.get("authorization")
    if not header:
        raise MTurkAuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH_RE.match(header.strip())
    if match is None:
        if not header.startswith(ALGORITHM):
            raise MTurkAuthError(
                "IncompleteSignatureException",
                f"Authorization header requires the {ALGORITHM} algorithm.",
            )
        raise MTurkAuthError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            "parameters.",
        )
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise MTurkAuthError(
            "IncompleteSignatureException",
            "Credential should be scoped to a valid region, a service and 'aws4_request'.",
        )
    access_key_id, day, region, service, _ = parts
    if service != SERVICE_NAME:
        raise MTurkAuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE_NAME}'.",
        )
    signed = match["signed"].split(";")
    if "host" not in signed or signed != sorted(set(signed)):
        raise MTurkAuthError(
            "InvalidSignatureException",
            "SignedHeaders must be sorted, distinct and include host.",
        )
    return access_key_id, day, region, signed, match["signature"]


def check_request_time(request: Request, day: str, now: datetime) -> str:
    """The X-Amz-Date, refused when absent, malformed, of another day than the scope, or more
    than 5 minutes away from `now`."""
    amz_date = request.headers.get("x-amz-date")
    if not amz_date:
        raise MTurkAuthError(
            "IncompleteSignatureException", "Authorization header requires existence of X-Amz-Date."
        )
    try:
        signed_at = datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise MTurkAuthError(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format': {amz_date}"
        ) from None
    if amz_date[:8] != day:
        raise MTurkAuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid date: '{amz_date[:8]}'.",
        )
    stamp = now.strftime(_AMZ_DATE_FORMAT)
    if signed_at < now - MAX_SKEW:
        raise MTurkAuthError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime(_AMZ_DATE_FORMAT)} ({stamp} - 5 min.)",
        )
    if signed_at > now + MAX_SKEW:
        raise MTurkAuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(_AMZ_DATE_FORMAT)} ({stamp} + 5 min.)",
        )
    return amz_date


def verify_signature(
    request: Request,
    body: bytes,
    *,
    access_key_id: str,
    secret: str,
    day: str,
    region: str,
    signed_headers: list[str],
    signature: str,
    amz_date: str,
) -> None:
    """Recompute the signature with botocore's signer; refuse a mismatch."""
    body_sha256 = hashlib.sha256(body).hexdigest()
    claimed_sha256 = request.headers.get("x-amz-content-sha256")
    if claimed_sha256 is not None and claimed_sha256 != body_sha256:
        # The canonical request would use the header's value: it must be the body's hash.
        raise _mismatch()
    headers: dict[str, str] = {}
    for name in signed_headers:
        values = request.headers.getlist(name)
        if not values:
            raise _mismatch()
        headers[name] = ",".join(values)
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    url = "http://" + headers["host"] + raw_path.decode("latin-1")
    if query:
        url += "?" + query.decode("latin-1")
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    aws_request.context["timestamp"] = amz_date
    signer = _VerifyingSigner(
        Credentials(access_key_id, secret),
        region,
        signed_headers,
        body_sha256,
        _signing_keys.get(access_key_id, secret, day, region),
    )
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _mismatch()


def _mismatch() -> MTurkAuthError:
    return MTurkAuthError(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.",
    )


async def authenticate(
    request: Request, database: Database, body: bytes, now: datetime
) -> MTurkPrincipal:
    """The requester who signed this call. A cached key costs no connection; a miss is one
    statement on a connection held only for it."""
    access_key_id, day, region, signed_headers, signature = _parse_authorization(request)
    amz_date = check_request_time(request, day, now)
    cache = request.app.state.mturk_credential_cache
    principal = cache.get(access_key_id)
    if principal is None:
        async with database.autocommit() as db:
            principal = await resolve_access_key(
                db, cache, request.app.state.mturk_secrets_key, access_key_id
            )
    if principal is None or principal.kind != "requester":
        raise MTurkAuthError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    verify_signature(
        request,
        body,
        access_key_id=access_key_id,
        secret=principal.secret,
        day=day,
        region=region,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
    )
    return principal
