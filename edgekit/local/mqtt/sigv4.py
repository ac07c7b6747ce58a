"""SigV4 presigned websocket URLs, checked the way AWS IoT Core checks them.

A client holding IAM credentials opens ``GET /mqtt?X-Amz-Algorithm=...`` with
the SigV4 query parameters for the ``iotdevicegateway`` service:
``X-Amz-Algorithm`` (AWS4-HMAC-SHA256), ``X-Amz-Credential``
(``AKID/yyyymmdd/region/iotdevicegateway/aws4_request``), ``X-Amz-Date``,
``X-Amz-SignedHeaders`` (``host`` at least), optionally ``X-Amz-Expires``, and
``X-Amz-Signature``. IoT Core wants ``X-Amz-Security-Token`` appended after
signing, so the token is not part of the canonical query string.

`SigV4Verifier` recomputes the signature with botocore's own signer
(`botocore.auth.SigV4Auth`: canonical request, string to sign, signing key),
never with crypto of its own, and answers with the problem (missing parameter,
unknown key, expired, bad signature) or None. Secrets come from a mapping of
access key id to secret key: the local backend's dummy credentials by default,
the ones ``edgekit local`` hands to every AWS client it starts.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "iotdevicegateway"
SIGNED_PARAMETERS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
UNSIGNED_PARAMETERS = ("X-Amz-Signature", "X-Amz-Security-Token")
# The local backend's credentials (`edgekit.local.endpoints.DUMMY_ACCESS_KEY_ID` and
# its secret): what `edgekit local` hands to the AWS clients it starts.
LOCAL_CREDENTIALS: Mapping[str, str] = {"testing": "testing"}
MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4's longest presigned URL (X-Amz-Expires)
UNSIGNED_LIFETIME_S = 300  # no X-Amz-Expires: the signature is good for 5 minutes
CLOCK_SKEW_S = 300  # an X-Amz-Date at most this far in the future is accepted
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class _QueryParamsAuth(SigV4Auth):
    """botocore's SigV4 signer over the query parameters as received, headers as signed."""

    def __init__(self, credentials: Credentials, region: str, headers: list[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # Exactly the headers the client listed: botocore's own choice leaves out hop-by-hop
        # headers (Connection, Upgrade) that a websocket client signs.
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                headers[name.lower()] = value
        return headers


@dataclass(frozen=True)
class SigV4Verifier:
    """Checks a websocket upgrade's presigned query; ``check`` returns the problem or None."""

    credentials: Mapping[str, str] = field(default_factory=lambda: dict(LOCAL_CREDENTIALS))
    service: str = SERVICE

    def check(
        self,
        target: str,
        headers: tuple[tuple[str, str], ...],
        now: datetime | None = None,
    ) -> str | None:
        parts = urlsplit(target)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        params: dict[str, str] = {}
        for key, value in pairs:
            if key.startswith("X-Amz-") and key in params:
                return f"query parameter {key} appears more than once"
            params[key] = value
        missing = [p for p in SIGNED_PARAMETERS if not params.get(p)]
        if missing:
            return (
                f"missing SigV4 query parameter(s) {', '.join(missing)}: sign the websocket "
                f"URL for the {self.service!r} service (AWS IoT Core presigned URL)"
            )
        if params["X-Amz-Algorithm"] != ALGORITHM:
            return f"X-Amz-Algorithm {params['X-Amz-Algorithm']!r} unsupported; use {ALGORITHM}"
        scope = params["X-Amz-Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return (
                "X-Amz-Credential must be ACCESS_KEY/yyyymmdd/region/service/aws4_request, "
                f"not {params['X-Amz-Credential']!r}"
            )
        access_key, day, region, service, _ = scope
        if service != self.service:
            return f"X-Amz-Credential is scoped to service {service!r}; sign for {self.service!r}"
        try:
            signed_at = datetime.strptime(params["X-Amz-Date"], DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return f"X-Amz-Date {params['X-Amz-Date']!r} is not yyyymmddTHHMMSSZ"
        if day != params["X-Amz-Date"][:8]:
            return f"X-Amz-Credential date {day} differs from X-Amz-Date {params['X-Amz-Date']}"
        problem = self._check_time(params, signed_at, now or datetime.now(UTC))
        if problem:
            return problem
        secret = self.credentials.get(access_key)
        if secret is None:
            return f"access key {access_key!r} is not known to this endpoint"
        signed = params["X-Amz-SignedHeaders"].split(";")
        if "host" not in signed:
            return "X-Amz-SignedHeaders must include host"
        present = {name.lower() for name, _ in headers}
        absent = [h for h in signed if h not in present]
        if absent:
            return f"signed header(s) {', '.join(absent)} not in the request"
        expected = self._signature(parts.path, pairs, headers, signed, params, region, secret)
        if not hmac.compare_digest(expected, params["X-Amz-Signature"].lower()):
            return (
                "the signature does not match (X-Amz-Signature); check the secret key and "
                "that X-Amz-Security-Token is appended after signing"
            )
        return None

    @staticmethod
    def _check_time(params: dict[str, str], signed_at: datetime, now: datetime) -> str | None:
        if signed_at - now > timedelta(seconds=CLOCK_SKEW_S):
            return f"X-Amz-Date {params['X-Amz-Date']} is in the future; check the clock"
        lifetime = UNSIGNED_LIFETIME_S
        if "X-Amz-Expires" in params:
            raw = params["X-Amz-Expires"]
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_EXPIRES_S:
                return f"X-Amz-Expires {raw!r} must be 1 to {MAX_EXPIRES_S} seconds"
            lifetime = int(raw)
        if now > signed_at + timedelta(seconds=lifetime):
            return (
                f"the presigned URL expired: signed at {params['X-Amz-Date']}, "
                f"valid for {lifetime} s; sign it again"
            )
        return None

    @staticmethod
    def _signature(
        path: str,
        pairs: list[tuple[str, str]],
        headers: tuple[tuple[str, str], ...],
        signed: list[str],
        params: dict[str, str],
        region: str,
        secret: str,
    ) -> str:
        access_key = params["X-Amz-Credential"].split("/", 1)[0]
        auth = _QueryParamsAuth(Credentials(access_key, secret), region, signed)
        request = AWSRequest(
            method="GET",
            url=f"http://localhost{path}",  # http: botocore hashes the (empty) payload
            headers=_joined(headers, signed),
            params=[(k, v) for k, v in pairs if k not in UNSIGNED_PARAMETERS],
        )
        request.context["timestamp"] = params["X-Amz-Date"]
        canonical = auth.canonical_request(request)
        return auth.signature(auth.string_to_sign(request, canonical), request)


def _joined(headers: tuple[tuple[str, str], ...], names: list[str]) -> dict[str, str]:
    """The signed headers by lower-case name, repeated ones joined with commas (SigV4)."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in names:
            out[key] = f"{out[key]},{value}" if key in out else value
    return out


__all__ = ["LOCAL_CREDENTIALS", "SERVICE", "SigV4Verifier"]
