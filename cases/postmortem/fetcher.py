"""WeasyPrint's only way to load anything: our bundled stylesheet, by exact URL, and nothing else.

The document is rendered with ``base_url=render.BASE_URL``, a name under the reserved ``.invalid``
top-level domain, so even a bug here could not reach a real host. The template links the stylesheet as
``BASE_URL + "static/css/postmortem.css"``; the fetcher answers exactly the URLs in :data:`BUNDLED`
from files in this repository and refuses every other request (``file:``, ``http:``, ``data:``,
relative paths, other static files) without opening anything. Fonts come from fontconfig (DejaVu, from
Debian's ``fonts-dejavu-core``), never through a URL.

Every request is recorded in ``requested`` (the tests assert on it); refusals also go to ``refused``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from weasyprint.urls import URLFetcher, URLFetcherResponse

from .render import BASE_URL, STYLESHEET

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
BUNDLED: dict[str, tuple[Path, str]] = {
    BASE_URL + STYLESHEET: (ROOT / STYLESHEET, "text/css"),
}


class Refused(ValueError):
    """The renderer asked for something that is not one of our bundled files."""


class StaticOnlyFetcher(URLFetcher):
    def __init__(self) -> None:
        super().__init__(timeout=1, allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
        self.requested: list[str] = []
        self.refused: list[str] = []

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        self.requested.append(url)
        bundled = BUNDLED.get(url)
        if bundled is None:
            self.refused.append(url)
            log.warning("post-mortem renderer: refused to fetch %r", url[:200])
            raise Refused(f"not a bundled file: {url[:200]!r}")
        path, mime = bundled
        return URLFetcherResponse(
            url, body=path.read_bytes(), headers={"Content-Type": f"{mime}; charset=utf-8"}
        )

    def open(self, url, data=None, timeout=None):  # never urllib's handlers, whatever calls this
        return self.fetch(getattr(url, "full_url", url))

    def __call__(self, url: str) -> URLFetcherResponse:
        return self.fetch(url)
