"""AWS Signature Version 4, with botocore's own canonicalization, for both ends of the API.

    server: api/auth.py ─► expected_signature(...)   what botocore would have signed for
                           exactly the headers the client lists in SignedHeaders
    client: cli.py invoke, load/ ─► Signer.sign(...)  the X-Amz-Date and Authorization to send

Only the last step differs from botocore: the signing key (four HMACs over the secret, the
day, the region and the service) is derived once per (secret, day, region, service) and
cached, so a server checking, or a harness sending, thousands of requests a second pays one
HMAC of its own per request on top of botocore's canonical request.

botocore is imported here only: a server with ``--auth none`` and clients that do not sign
never need it (it comes with boto3, or ``pip install 'lambda-scheduler[sigv4]'``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from hashlib import sha256
from typing import Any

from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest, HTTPHeaders  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"  # X-Amz-Date, ISO 8601 basic format, UTC

_keys: dict[tuple[str, str, str, str], bytes] = {}
_KEYS_AT_MOST = 1024  # secrets x days x regions in use at once: a handful


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), sha256).digest()


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's derived key, cached: it changes only with the day (YYYYMMDD) of the request."""
    cache_key = (secret, day, region, service)
    key = _keys.get(cache_key)
    if key is None:
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), service), "aws4_request")
        if len(_keys) >= _KEYS_AT_MOST:
            _keys.clear()
        _keys[cache_key] = key
    return key


class _CachedKeySigV4(SigV4Auth):  # type: ignore[misc]
    """botocore's signer with the derived key taken from the cache."""

    def signature(self, string_to_sign: str, request: Any) -> str:
        day = request.context["timestamp"][:8]
        key = signing_key(self.credentials.secret_key, day, self._region_name, self._service_name)
        return hmac.new(key, string_to_sign.encode(), sha256).hexdigest()


class _ListedHeadersSigV4(_CachedKeySigV4):
    """The server's side: canonical headers are exactly those the client listed as signed
    (botocore's own selection would drop some it never signs itself, such as User-Agent,
    that other SDKs may sign)."""

    def headers_to_sign(self, request: Any) -> Any:
        return request.headers


def expected_signature(
    *,
    method: str,
    url: str,
    signed_headers: Iterable[tuple[str, str]],
    body: bytes,
    access_key: str,
    secret_key: str,
    timestamp: str,
    region: str,
    service: str = SERVICE,
) -> str:
    """The signature a client holding ``secret_key`` computes for this request: ``url`` as the
    client saw it (scheme, Host, raw path and query), ``signed_headers`` as received (lower-case
    names, every value of each), ``timestamp`` its X-Amz-Date."""
    request = AWSRequest(method=method, url=url, data=body)
    headers = HTTPHeaders()
    for name, value in signed_headers:
        headers[name] = value  # adds: a header sent twice is canonicalized as "a,b", as signed
    request.headers = headers
    request.context["timestamp"] = timestamp
    auth = _ListedHeadersSigV4(Credentials(access_key, secret_key), service, region)
    canonical = auth.canonical_request(request)
    signature: str = auth.signature(auth.string_to_sign(request, canonical), request)
    return signature


class Signer:
    """Signs a client's requests, as boto3 does (Host, X-Amz-Date and the given headers)."""

    def __init__(self, access_key: str, secret_key: str, region: str, service: str = SERVICE) -> None:
        self._auth = _CachedKeySigV4(Credentials(access_key, secret_key), service, region)

    def sign(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus X-Amz-Date and Authorization, for this request sent now."""
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        self._auth.add_auth(request)
        return {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}
