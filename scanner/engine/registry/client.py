"""A small OCI Distribution client on httpx: manifests, blobs, referrers, bearer and basic auth.

Why not a library: ``oras`` (oras-py) and ``python-dxf`` are both built on ``requests`` sessions that
follow redirects themselves and connect to whatever the name resolves to at connect time. We need to
check every hop (registry, token realm, each redirect, blob storage) against the SSRF policy, connect to
the address we checked, drop the ``Authorization`` header when a redirect leaves the registry, bound
every response, and hash blobs as they stream. That is most of a client; the rest (a handful of GETs)
is small. See docs/registry.md.

Credentials are never logged and never appear in an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urlencode, urljoin

import httpx

from ..limits import Limits
from ..model import ScanError
from .netpolicy import BlockedAddress, NetPolicy
from .options import Credentials
from .reference import split_host_port

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
USER_AGENT = "lowerdir-registry/0.1"
MAX_TOKEN_BYTES = 256 * 1024
CHUNK = 1 << 20
_CHALLENGE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


class RegistryError(ScanError):
    """The registry could not be read (one readable line, never credentials)."""


class NotFound(RegistryError):
    pass


class AuthError(RegistryError):
    pass


@dataclass
class Manifest:
    data: bytes
    media_type: str  # the Content-Type the registry sent
    header_digest: str  # Docker-Content-Digest, "" when absent
    digest: str  # sha256 of data


@dataclass
class BlobResult:
    digest: str
    size: int


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE.finditer(rest)
    }
    return scheme.lower(), params


class RegistryClient:
    """One registry (``host[:port]``) with optional credentials, through a :class:`NetPolicy`."""

    def __init__(
        self,
        registry: str,
        policy: NetPolicy,
        *,
        credentials: Credentials | None = None,
        limits: Limits | None = None,
        timeout: float = 30.0,
        max_redirects: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self.host, port = split_host_port(registry)
        self.policy = policy
        self.credentials = credentials
        self.limits = limits or Limits()
        self.max_redirects = max_redirects
        insecure = policy.is_insecure(self.host, port or 443) or policy.is_insecure(self.host, port or 80)
        self.scheme = "https"
        self.port = port or 443
        self._insecure = insecure
        self._fell_back = False
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._basic = False
        self.bytes_downloaded = 0
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------------
    def _base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _send(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        """One request, following redirects only to hosts the policy allows (checked per hop)."""
        for _ in range(self.max_redirects + 1):
            target, path = self.policy.check_url(url)
            hdrs = dict(headers)
            hdrs["Host"] = target.netloc
            same = (target.host, target.port) == (self.host.lower(), self.port)
            if not same:
                hdrs.pop("Authorization", None)  # never hand the registry's token to blob storage
            ext = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = self._http.build_request(method, target.ip_url(path), headers=hdrs, extensions=ext)
            try:
                response = self._http.send(request, stream=True)
            except httpx.TimeoutException:
                raise RegistryError(f"{target.netloc} did not answer in time") from None
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"cannot reach {target.netloc}: {type(exc).__name__}: {str(exc)[:200]}"
                ) from None
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("location", "")
                response.close()
                if not location:
                    raise RegistryError(f"{target.netloc} sent a redirect without a location")
                url = urljoin(url, location)
                continue
            return response
        raise RegistryError(f"more than {self.max_redirects} redirects")

    def _request(self, method: str, path: str, headers: dict[str, str], scope: str) -> httpx.Response:
        """A registry API request with authentication (one retry after a 401 challenge)."""
        for attempt in range(2):
            hdrs = dict(headers)
            if scope in self._auth:
                hdrs["Authorization"] = self._auth[scope]
            try:
                response = self._send(method, self._base() + path, hdrs)
            except RegistryError:
                if self._insecure and self.scheme == "https" and not self._fell_back:
                    # an insecure registry may speak plain HTTP only (as docker and skopeo fall back)
                    self._fell_back = True
                    self.scheme = "http"
                    if self.port == 443:
                        self.port = 80
                    response = self._send(method, self._base() + path, hdrs)
                else:
                    raise
            if response.status_code != 401:
                return response
            if attempt:
                response.close()
                if self.credentials:
                    raise AuthError(f"{self.registry} refused the configured credentials (HTTP 401)")
                raise AuthError(f"{self.registry} requires credentials for {scope.split(':')[1]} (HTTP 401)")
            challenge = response.headers.get("www-authenticate", "")
            response.close()
            self._authenticate(challenge, scope)
        raise AssertionError("unreachable")

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, params = _challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise AuthError(
                    f"{self.registry} requires a user name and password (basic auth); none is "
                    "configured for it"
                )
            if self._basic:
                raise AuthError(f"{self.registry} refused the configured credentials")
            self._basic = True
            token = base64.b64encode(
                f"{self.credentials.username}:{self.credentials.password}".encode()
            ).decode()
            self._auth[scope] = f"Basic {token}"
            return
        if scheme != "bearer" or not params.get("realm"):
            raise AuthError(f"{self.registry} asked for an unsupported authentication scheme {scheme[:40]!r}")
        if scope in self._auth:
            raise AuthError(
                f"{self.registry} refused the token it issued (wrong credentials or no access "
                "to the repository)"
            )
        query = {
            k: v
            for k, v in (("service", params.get("service", "")), ("scope", params.get("scope") or scope))
            if v
        }
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = {"Accept": "application/json"}
        if self.credentials:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        try:
            response = self._send("GET", url, headers)
        except BlockedAddress as exc:
            raise AuthError(f"token service of {self.registry}: {exc}") from None
        try:
            if response.status_code in (401, 403):
                raise AuthError(
                    f"{self.registry}'s token service refused the "
                    f"{'configured credentials' if self.credentials else 'anonymous request'} "
                    f"(HTTP {response.status_code})"
                )
            if response.status_code != 200:
                raise AuthError(f"{self.registry}'s token service answered HTTP {response.status_code}")
            body = self._read_bounded(response, MAX_TOKEN_BYTES, "token response")
        finally:
            response.close()
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
            raise AuthError(f"{self.registry}'s token service sent no token")
        self._auth[scope] = f"Bearer {token}"

    def _read_bounded(self, response: httpx.Response, limit: int, what: str) -> bytes:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise RegistryError(f"{what} is {int(length)} bytes, over the {limit}-byte bound")
        out = bytearray()
        for chunk in response.iter_bytes(CHUNK):
            out += chunk
            if len(out) > limit:
                raise RegistryError(f"{what} is over the {limit}-byte bound")
        self.bytes_downloaded += len(out)
        return bytes(out)

    @staticmethod
    def _scope(repo: str) -> str:
        return f"repository:{repo}:pull"

    @staticmethod
    def _status_error(response: httpx.Response, what: str) -> RegistryError:
        code = response.status_code
        if code == 404:
            return NotFound(f"{what} not found (HTTP 404)")
        if code in (401, 403):
            return AuthError(f"access to {what} denied (HTTP {code})")
        if code == 429:
            return RegistryError(f"{what}: the registry is rate-limiting requests (HTTP 429)")
        return RegistryError(f"{what}: the registry answered HTTP {code}")

    # -- API -----------------------------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str, accept: str = MANIFEST_ACCEPT) -> Manifest:
        """GET /v2/<repo>/manifests/<tag or digest>, bounded by ``max_json_bytes``."""
        what = f"manifest {repo}:{ref}" if not ref.startswith("sha256:") else f"manifest {repo}@{ref}"
        response = self._request(
            "GET", f"/v2/{repo}/manifests/{quote(ref, safe=':')}", {"Accept": accept}, self._scope(repo)
        )
        try:
            if response.status_code != 200:
                raise self._status_error(response, what)
            data = self._read_bounded(response, self.limits.max_json_bytes, what)
            media = response.headers.get("content-type", "").split(";", 1)[0].strip()
            header = response.headers.get("docker-content-digest", "")
        finally:
            response.close()
        return Manifest(data, media, header, sha256_digest(data))

    def fetch_blob(
        self,
        repo: str,
        digest: str,
        out: BinaryIO,
        *,
        max_bytes: int,
        progress: Callable[[int], None] | None = None,
    ) -> BlobResult:
        """Stream a blob into ``out``, hashing as it arrives; stops at ``max_bytes``."""
        what = f"blob {digest}"
        response = self._request("GET", f"/v2/{repo}/blobs/{digest}", {}, self._scope(repo))
        try:
            if response.status_code != 200:
                raise self._status_error(response, what)
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise RegistryError(f"{what} is {int(length)} bytes, over the {max_bytes}-byte bound")
            h = hashlib.sha256()
            size = 0
            for chunk in response.iter_bytes(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise RegistryError(f"{what} is over the {max_bytes}-byte bound")
                h.update(chunk)
                out.write(chunk)
                if progress:
                    progress(len(chunk))
        finally:
            response.close()
        self.bytes_downloaded += size
        return BlobResult("sha256:" + h.hexdigest(), size)

    def referrers(self, repo: str, digest: str) -> bytes | None:
        """The OCI 1.1 referrers index for ``digest``; None when the registry has no referrers API."""
        response = self._request(
            "GET", f"/v2/{repo}/referrers/{digest}", {"Accept": OCI_INDEX}, self._scope(repo)
        )
        try:
            if response.status_code in (404, 405, 400):
                return None
            if response.status_code != 200:
                raise self._status_error(response, f"referrers of {digest}")
            media = response.headers.get("content-type", "").split(";", 1)[0].strip()
            if media and media != OCI_INDEX:
                return None  # e.g. an HTML error page from a proxy
            return self._read_bounded(response, self.limits.max_json_bytes, f"referrers of {digest}")
        finally:
            response.close()
