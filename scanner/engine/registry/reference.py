"""Image references: ``[host[:port]/]repo[:tag][@sha256:…]``, with Docker Hub's defaults.

The grammar is distribution's (``docker/distribution/reference``): the first path component is a
registry when it contains a dot or a colon or is ``localhost``; otherwise the image is on Docker Hub
(``docker.io``) and a one-component name gets ``library/``. Everything is validated before it is used
in a URL: repository components, tags and digests have strict alphabets, so nothing from a reference
can add a path segment, a query or a host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import ScanError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
MAX_REFERENCE = 512


class ReferenceError(ScanError):  # noqa: A001 - a ScanError: one readable line
    """The reference is not a valid image reference."""


@dataclass(frozen=True, slots=True)
class Reference:
    registry: str  # host[:port] as written ("docker.io" for Docker Hub)
    repository: str  # "library/alpine", "team/app"
    tag: str = ""
    digest: str = ""  # "sha256:…" when the reference pins one

    @property
    def api_registry(self) -> str:
        """The host[:port] the Distribution API is served from."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag (``latest`` by default)."""
        return self.digest or self.tag or "latest"

    @property
    def tag_or_latest(self) -> str:
        return self.tag or ("" if self.digest else "latest")

    def __str__(self) -> str:
        text = self.name
        if self.tag_or_latest:
            text += f":{self.tag_or_latest}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def pinned(self, digest: str) -> str:
        """This reference pinned to ``digest`` (what a tag resolved to)."""
        return f"{self.name}@{digest}"


def split_host_port(registry: str) -> tuple[str, int | None]:
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = registry.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return registry, None


def parse_reference(text: str) -> Reference:
    """Parse and validate; ReferenceError with one readable line when the reference is not valid."""
    if not isinstance(text, str) or not text.strip():
        raise ReferenceError("no image reference given")
    text = text.strip()
    if len(text) > MAX_REFERENCE:
        raise ReferenceError(f"the image reference is longer than {MAX_REFERENCE} characters")
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "docker":
            raise ReferenceError(f"not an image reference: {text[:100]!r} (use host/repo:tag, not a URL)")
        text = rest
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ReferenceError(f"invalid digest {digest[:80]!r}: expected sha256: and 64 lower-case hex digits")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise ReferenceError(f"invalid tag {tag[:80]!r}")
    parts = name.split("/")
    if len(parts) > 1 and (
        "." in parts[0] or ":" in parts[0] or parts[0] == "localhost" or parts[0].startswith("[")
    ):
        registry, path = parts[0], parts[1:]
        if not _HOST.match(registry):
            raise ReferenceError(f"invalid registry host {registry[:80]!r}")
        _, port = split_host_port(registry)
        if port is not None and not 0 < port < 65536:
            raise ReferenceError(f"invalid registry port in {registry[:80]!r}")
        registry = registry.lower()
    else:
        registry, path = DOCKER_HUB, parts
    if registry in ("index.docker.io", DOCKER_HUB_API):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    if not path or not all(_COMPONENT.match(p) for p in path):
        raise ReferenceError(
            f"invalid repository name {'/'.join(path)[:200]!r} (lower-case letters, digits and separators)"
        )
    repository = "/".join(path)
    if len(repository) > 255:
        raise ReferenceError("the repository name is longer than 255 characters")
    return Reference(registry, repository, tag, digest)
