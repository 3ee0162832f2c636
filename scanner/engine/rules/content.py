"""Content rules during the single pass: the tar walker hands each regular file's bytes to a
:class:`LayerInspector` (in the scanning process or a layer worker) while it hashes them.

For each regular file the inspector may

- **scan** it with YARA-X (compiled once per process, lazily: compiled rules are never pickled) when it
  is a candidate: ELF up to ``Limits.max_scan_elf``, text (no NUL in its first KiB: scripts, config,
  source) up to ``Limits.max_scan_text``. Other files (archives, images, compressed data) and larger
  ones are hashed but not scanned; larger candidates are counted (``scan.content-skipped``);
- compute **extra digests** for package verification — MD5 (dpkg ``md5sums``) and SHA-1 (apk ``Z:Q1``)
  — for regular files under the paths packages install to (``/usr`` except ``/usr/local``, ``/bin``,
  ``/sbin``, ``/lib*``, ``/etc``, ``/boot``). The database is often further along in the tar than the
  files it lists (``usr/`` sorts before ``var/``) or in another layer scanned in parallel, so the digests
  are computed before it is known which files it lists. To halve the cost, a layer that shows which
  package manager it belongs to (``/etc/dpkg``, ``/var/lib/dpkg`` → MD5; ``/etc/apk``, ``/lib/apk`` →
  SHA-1) computes only that one from then on; files seen before any hint get both. A file a database
  lists whose digest is missing is reported (``package.unverified-file``), never silently passed;
- **capture** the few files the rules read whole: package databases, ``/etc/ld.so.preload``,
  ``/etc/os-release``, ``/etc/passwd`` (bounded by ``Limits.max_capture``).

Everything returned is plain data (:class:`LayerContent`), pickled back from workers.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

from ..limits import Limits

ELF = b"\x7fELF"
TEXT_PROBE = 1024  # a NUL in the first KiB: not text
MAX_HITS_PER_FILE = 20
MAX_SKIPPED_LISTED = 20
MAX_MATCHES_PER_PATTERN = 20
CAPTURE_EXACT = frozenset(
    {
        "/var/lib/dpkg/status",
        "/var/lib/dpkg/diversions",
        "/lib/apk/db/installed",
        "/usr/lib/apk/db/installed",
        "/etc/ld.so.preload",
        "/etc/os-release",
        "/usr/lib/os-release",
        "/etc/passwd",
    }
)
CAPTURE_DIRS = ("/var/lib/dpkg/info/", "/var/lib/dpkg/status.d/")
_HINTED = ("/etc/", "/var/lib/dpkg/", "/lib/apk/", "/usr/lib/apk/")
DIGEST_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib", "/etc/", "/boot/")
# Documentation and translations are not executed: their package checksums are not verified (a quarter
# of a Debian base image's bytes; see docs/performance.md). /usr/local belongs to no package.
DOCS = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/")
NOT_DIGESTED = ("/usr/local/", *DOCS)
MD5, SHA1 = 1, 2
BOTH = MD5 | SHA1
_EMPTY = (
    hashlib.md5(b"", usedforsecurity=False).hexdigest(),
    hashlib.sha1(b"", usedforsecurity=False).hexdigest(),
)


def family_hint(path: str) -> int:
    """Which package manager's digest a path implies (0: none)."""
    if path.startswith(("/var/lib/dpkg/", "/etc/dpkg/")) or path == "/etc/debian_version":
        return MD5
    if path.startswith(("/lib/apk/", "/etc/apk/", "/usr/lib/apk/")) or path == "/etc/alpine-release":
        return SHA1
    return 0


def wants_digests(path: str) -> bool:
    return path.startswith(DIGEST_PREFIXES) and not path.startswith(NOT_DIGESTED)


def wants_capture(path: str) -> bool:
    if path in CAPTURE_EXACT:
        return True
    if path.startswith(CAPTURE_DIRS):
        return not path.startswith("/var/lib/dpkg/info/") or path.endswith((".md5sums", ".conffiles"))
    return False


def redact(value: str) -> str:
    """Never a whole secret: a few leading characters, the length and a hash prefix."""
    n = len(value)
    show = min(4, n // 4)
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{value[:show]}…[{n} chars, sha256:{digest}]"


def secret_value(text: str, value_re: re.Pattern[str] | None) -> str:
    """The secret inside a match: the pattern's ``(?P<value>...)`` group when it has one."""
    if value_re is not None:
        found = value_re.search(text)
        if found is not None and found.group("value"):
            text = found.group("value")
    return text.strip().strip("\"'")


def printable(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else c for c in text)
    return text + ("…" if len(data) > limit else "")


@dataclass(frozen=True)
class ContentPlan:
    """What the walk must do for the rules; picklable (sources, not compiled rules)."""

    general: tuple[tuple[str, str, str], ...]  # (namespace, origin, YARA text)
    scoped: tuple[tuple[str, str, str], ...]  # rules that count only in some paths
    scope: str  # regex: a file is scanned with ``scoped`` when its path matches
    target_scope: tuple[tuple[str, str, str], ...]  # (namespace, identifier, path regex) of scoped rules
    secret_idents: frozenset[tuple[str, str]]  # matches to redact
    value_re: tuple[tuple[str, str, str], ...]  # (namespace, identifier, regex): the secret inside a match
    key: str  # the rule pack's version: the per-process compile cache key
    placeholders: tuple[tuple[str, str, str], ...] = ()  # (namespace, identifier, regex): not a secret
    # Which files get the scoped rules, by each scoped glob's last component (cheap to test first):
    # (exact name, glob regex), (name regex, glob regex), (directory prefix of "dir/**", glob regex).
    scope_exact: tuple[tuple[str, str], ...] = ()
    scope_wild: tuple[tuple[str, str, str, str, str], ...] = ()  # prefix, suffix, "/dir/", name rx, glob rx
    scope_dirs: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class LayerContent:
    """What the content rules saw in one layer (paths are the layer's normalised paths)."""

    # (path, namespace, identifier, matches, excerpt, value sha256, offset, metadata)
    hits: list[tuple] = field(default_factory=list)
    digests: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (md5 | "", sha1 | "")
    captured: dict[str, bytes] = field(default_factory=dict)
    scripts: set[str] = field(default_factory=set)  # files starting with "#!"
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # (path, size, why), first few
    skipped_count: int = 0
    scanned: int = 0
    scanned_bytes: int = 0
    hints: int = 0  # MD5 / SHA1 bits seen
    errors: list[tuple[str, str]] = field(default_factory=list)


_COMPILED: dict[str, tuple[int, object, object | None]] = {}


def compiled(plan: ContentPlan) -> tuple[object, object | None]:
    """The plan's YARA-X rules, compiled at most once per process, lazily, never pickled.

    A layer worker started with ``fork`` finds the rules its parent compiled (when loading the pack
    validated them) in its copy-on-write memory and uses them as they are: compiled rules are
    immutable. A worker started with ``spawn`` has none and compiles its own on first use.
    """
    entry = _COMPILED.get(plan.key)
    if entry is None:
        from .loader import _build

        general = _build(plan.general)
        scoped = _build(plan.scoped) if plan.scoped else None
        entry = _COMPILED[plan.key] = (os.getpid(), general, scoped)
    return entry[1], entry[2]


def prime(plan: ContentPlan, general: object, scoped: object | None) -> None:
    """Keep the rules the loader compiled (to validate them) for this process's scans."""
    _COMPILED[plan.key] = (os.getpid(), general, scoped)


def _fast_path(name: str) -> str:
    """The member's normalised path, as the layer collector computes it (cheaply for clean names,
    including the "./" prefix many tools write)."""
    if name.startswith("./"):
        name = name[2:]
    if name and name[0] not in "/." and "//" not in name and "/." not in name:
        return "/" + (name[:-1] if name[-1] == "/" else name)
    return _normalise(name)[0]


def _normalise(name: str) -> tuple[str, tuple[str, ...]]:
    global _normalise
    from ..layers import normalise  # imported late: layers imports this module

    _normalise = normalise
    return normalise(name)


class LayerInspector:
    """The tar walker's content hook for one layer: ``whole`` for a file whose bytes are all in the
    current buffer, else ``begin`` / ``piece`` ... / ``end``."""

    def __init__(self, plan: ContentPlan, limits: Limits, lower: int | None = None) -> None:
        """``lower``: the package managers (MD5 | SHA1 bits) of the layers below this one when all of
        them were scanned first (sequential scans), else None (unknown: layers in parallel, or the
        bottom layer, whose database may come later in its own tar)."""
        import yara_x

        self.plan = plan
        self.lower = lower
        general, scoped = compiled(plan)
        self.scanner = yara_x.Scanner(general)
        self.scoped_scanner = yara_x.Scanner(scoped) if scoped is not None else None
        timeout = max(1, int(limits.max_scan_seconds))
        for sc in (self.scanner, self.scoped_scanner):
            if sc is not None:
                sc.set_timeout(timeout)
                sc.max_matches_per_pattern(MAX_MATCHES_PER_PATTERN)
        self.scope = re.compile(plan.scope) if plan.scope else None
        self.scope_exact: dict[str, list[re.Pattern[str]]] = {}
        for name, rx in plan.scope_exact:
            self.scope_exact.setdefault(name, []).append(re.compile(rx))
        self.scope_wild = [
            (pre, suf, needle, re.compile(b) if b else None, re.compile(rx))
            for pre, suf, needle, b, rx in plan.scope_wild
        ]
        # one C call rules out most names: the suffixes (or, for "prefix*", prefixes) of the wild globs
        self.wild_suffixes = tuple(suf for pre, suf, _n, b, _r in plan.scope_wild if suf and not b)
        self.wild_prefixes = tuple(
            pre for pre, suf, _n, b, _r in plan.scope_wild if pre and not suf and not b
        )
        self.wild_always = any(b or not (pre or suf) for pre, suf, _n, b, _r in plan.scope_wild)
        self.scope_dirs = [(d, re.compile(rx)) for d, rx in plan.scope_dirs]
        self.scope_prefixes = tuple(d for d, _ in plan.scope_dirs)
        self.placeholders = {(ns, ident): re.compile(rx) for ns, ident, rx in plan.placeholders}
        self.target_scope = {(ns, ident): re.compile(rx) for ns, ident, rx in plan.target_scope}
        self.value_re = {(ns, ident): re.compile(rx, re.IGNORECASE) for ns, ident, rx in plan.value_re}
        self.secret = plan.secret_idents
        self.max_text = limits.max_scan_text
        self.max_elf = limits.max_scan_elf
        self.max_scan = max(self.max_text, self.max_elf)
        self.max_capture = limits.max_capture
        self.out = LayerContent()
        self.family = 0  # package-manager hints seen in this layer
        # streaming state
        self._path = ""
        self._size = 0
        self._md5 = None
        self._sha1 = None
        self._buf: bytearray | None = None
        self._capture = False
        self._first = True

    # -- whole files -----------------------------------------------------------------------------
    def whole(self, name: str, mode: int, size: int, data: memoryview) -> None:
        path = _fast_path(name)
        if "/.wh." in path:
            return
        if path.startswith(_HINTED):
            self.family |= family_hint(path)
        if path.startswith(DIGEST_PREFIXES) and not path.startswith(NOT_DIGESTED):
            self._digest_whole(path, data, size)
        if not size:
            return
        if (
            (path in CAPTURE_EXACT or path.startswith(CAPTURE_DIRS))
            and wants_capture(path)
            and size <= self.max_capture
        ):
            self.out.captured[path] = bytes(data)
        if size > self.max_text:
            head = bytes(data[:TEXT_PROBE])
            if head[:2] == b"#!":
                self.out.scripts.add(path)
            if head[:4] == ELF:
                if size > self.max_elf:
                    self._skip(path, size, "ELF larger than max_scan_elf")
                    return
            else:
                if head.find(b"\x00") < 0:
                    self._skip(path, size, "text larger than max_scan_text")
                return
            self._scan(path, bytes(data))
            return
        raw = bytes(data)  # the one copy YARA-X needs (it takes bytes only)
        if raw[:2] == b"#!":
            self.out.scripts.add(path)
        if raw[:4] == ELF or raw.find(b"\x00", 0, TEXT_PROBE) < 0:  # ELF, or text
            self._scan(path, raw)

    def _want(self) -> int:
        """Which digests to compute now: the package managers seen in this layer so far and below it;
        both while nothing is known; none when every layer below was scanned and none had one (a
        database appearing later lists these files only in odd images: reported as unverified)."""
        if self.lower is None:
            return self.family or BOTH
        return self.family | self.lower

    def _digest_whole(self, path: str, data: memoryview, size: int) -> None:
        if not size:
            self.out.digests[path] = _EMPTY
            return
        want = self._want()
        if not want:
            return
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest() if want & MD5 else ""
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest() if want & SHA1 else ""
        self.out.digests[path] = (md5, sha1)

    # -- streamed files --------------------------------------------------------------------------
    def begin(self, name: str, mode: int, size: int) -> bool:
        path = _fast_path(name)
        if "/.wh." in path:
            return False
        if path.startswith(("/etc/", "/var/lib/dpkg/", "/lib/apk/", "/usr/lib/apk/")):
            self.family |= family_hint(path)
        digests = wants_digests(path)
        capture = wants_capture(path) and size <= self.max_capture
        if not (digests or capture or size):
            return False
        self._path, self._size = path, size
        want = self._want()
        digests = digests and bool(want)
        self._md5 = hashlib.md5(usedforsecurity=False) if digests and want & MD5 else None
        self._sha1 = hashlib.sha1(usedforsecurity=False) if digests and want & SHA1 else None
        self._digests = digests
        self._capture = capture
        # sized once: no re-allocation while it fills (peak memory: the file twice, for the bytes copy)
        self._buf = bytearray(size) if (capture or size <= self.max_scan) else None
        self._pos = 0
        self._first = True
        self._head = b""
        return True

    def piece(self, piece: memoryview) -> None:
        if self._first:
            self._first = False
            self._head = head = bytes(piece[:TEXT_PROBE])
            if head[:2] == b"#!":
                self.out.scripts.add(self._path)
            elf = head[:4] == ELF
            limit = self.max_elf if elf else -1 if head.find(b"\x00") >= 0 else self.max_text
            if 0 <= limit < self._size:
                self._skip(
                    self._path,
                    self._size,
                    f"{'ELF' if elf else 'text'} larger than {'max_scan_elf' if elf else 'max_scan_text'}",
                )
            if not self._capture and not 0 <= self._size <= limit:
                self._buf = None
        if self._md5 is not None:
            self._md5.update(piece)
        if self._sha1 is not None:
            self._sha1.update(piece)
        if self._buf is not None:
            end = self._pos + len(piece)
            self._buf[self._pos : end] = piece
            self._pos = end

    def end(self) -> None:
        path = self._path
        if self._digests:
            self.out.digests[path] = (
                self._md5.hexdigest() if self._md5 is not None else "",
                self._sha1.hexdigest() if self._sha1 is not None else "",
            )
        self._md5 = self._sha1 = None
        buf, self._buf = self._buf, None
        if buf is None or not buf:
            return
        data = bytes(memoryview(buf)[: self._pos]) if self._pos != len(buf) else bytes(buf)
        del buf
        if self._capture:
            self.out.captured[path] = data
        head = data[:4]
        if head == ELF:
            if len(data) <= self.max_elf:
                self._scan(path, data)
        elif len(data) <= self.max_text and data.find(b"\x00", 0, TEXT_PROBE) < 0:
            self._scan(path, data)

    def link(self, path: str, target: str) -> None:
        """A hard link in this layer to an earlier file: it has the target's content."""
        digests = self.out.digests.get(target)
        if digests is not None and wants_digests(path):
            self.out.digests[path] = digests

    # -- YARA-X ----------------------------------------------------------------------------------
    def _skip(self, path: str, size: int, why: str) -> None:
        self.out.skipped_count += 1
        if len(self.out.skipped) < MAX_SKIPPED_LISTED:
            self.out.skipped.append((path, size, why))

    def _scan(self, path: str, data: bytes) -> None:
        import yara_x

        self.out.scanned += 1
        self.out.scanned_bytes += len(data)
        try:
            results = self.scanner.scan(data)
            self._collect(path, data, results, False)
            if self.scoped_scanner is not None and self._in_scope(path):
                self._collect(path, data, self.scoped_scanner.scan(data), True)
        except yara_x.TimeoutError:
            self.out.errors.append((path, "YARA-X timed out"))
        except yara_x.ScanError as exc:  # pragma: no cover - defensive
            self.out.errors.append((path, f"YARA-X error: {exc}"))

    def _in_scope(self, path: str) -> bool:
        base = path[path.rfind("/") + 1 :]
        for rx in self.scope_exact.get(base, ()):
            if rx.match(path):
                return True
        if not (self.wild_always or base.endswith(self.wild_suffixes) or base.startswith(self.wild_prefixes)):
            wild = ()
        else:
            wild = self.scope_wild
        for pre, suf, needle, base_rx, rx in wild:
            if (
                base.endswith(suf)
                and base.startswith(pre)
                and (not needle or needle in path)
                and (base_rx is None or base_rx.match(base))
                and rx.match(path)
            ):
                return True
        if self.scope_prefixes and path.startswith(self.scope_prefixes):
            return any(path.startswith(d) and rx.match(path) for d, rx in self.scope_dirs)
        return False

    def _collect(self, path: str, data: bytes, results, scoped: bool) -> None:
        hits = self.out.hits
        n = 0
        for rule in results.matching_rules:
            key = (rule.namespace, rule.identifier)
            if scoped:
                scope = self.target_scope.get(key)
                if scope is not None and not scope.match(path):
                    continue
            matches = sorted((m.offset, m.length) for p in rule.patterns for m in p.matches)
            meta = tuple(rule.metadata)
            if key in self.secret:
                # one hit per distinct secret value (a .env file holds several)
                values: dict[str, tuple[int, str]] = {}
                for offset, length in matches:
                    raw = data[offset : offset + min(length, 4096)]
                    text = secret_value(raw.decode("utf-8", "backslashreplace"), self.value_re.get(key))
                    placeholder = self.placeholders.get(key)
                    if placeholder is not None and placeholder.fullmatch(text):
                        continue
                    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
                    if digest not in values:
                        values[digest] = (offset, redact(text))
                if not values:
                    continue
                for digest, (offset, excerpt) in values.items():
                    hits.append(
                        (path, rule.namespace, rule.identifier, len(matches), excerpt, digest, offset, meta)
                    )
                    n += 1
            else:
                offset, length = matches[0] if matches else (-1, 0)
                excerpt = printable(data[offset : offset + min(length, 4096)]) if matches else ""
                hits.append((path, rule.namespace, rule.identifier, len(matches), excerpt, "", offset, meta))
                n += 1
            if n >= MAX_HITS_PER_FILE:
                break

    def result(self) -> LayerContent:
        self.out.hints = self.family
        return self.out


def scan_text(plan: ContentPlan, data: bytes) -> list[tuple]:
    """Scan a synthetic document (the config's Env, labels, history) with the general rules:
    ``[(namespace, identifier, offset, length, excerpt, value sha256), ...]`` for every match."""
    import yara_x

    general, _ = compiled(plan)
    scanner = yara_x.Scanner(general)
    scanner.max_matches_per_pattern(1000)
    value_re = {(ns, ident): re.compile(rx, re.IGNORECASE) for ns, ident, rx in plan.value_re}
    placeholders = {(ns, ident): re.compile(rx) for ns, ident, rx in plan.placeholders}
    out = []
    for rule in scanner.scan(data).matching_rules:
        key = (rule.namespace, rule.identifier)
        for pattern in rule.patterns:
            for match in pattern.matches:
                raw = data[match.offset : match.offset + match.length]
                text = raw.decode("utf-8", "backslashreplace")
                if key in plan.secret_idents:
                    text = secret_value(text, value_re.get(key))
                    placeholder = placeholders.get(key)
                    if placeholder is not None and placeholder.fullmatch(text):
                        continue
                    excerpt = redact(text)
                else:
                    excerpt = printable(raw)
                out.append(
                    (
                        rule.namespace,
                        rule.identifier,
                        match.offset,
                        match.length,
                        excerpt,
                        hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
                        tuple(rule.metadata),
                    )
                )
    return out


def plan_for(ruleset) -> ContentPlan:
    """The content plan of a loaded RuleSet."""
    targets = ruleset.yara_targets
    scoped_targets = tuple((ns, ident, t.scope) for (ns, ident), t in targets.items() if t.scope)
    scope = "|".join(f"(?:{rx})" for _, _, rx in scoped_targets)
    secret = frozenset(
        key
        for key, t in targets.items()
        if t.kind == "secret" or (t.kind in ("rule", "yara") and t.ref.startswith("secret."))
    )
    after = tuple(
        ("secrets", "secret_" + p.id.replace("-", "_"), p.value_re.pattern)
        for p in ruleset.secret_patterns.values()
        if p.value_re is not None
    )
    placeholders = tuple(
        ("secrets", "secret_" + p.id.replace("-", "_"), p.placeholder.pattern)
        for p in ruleset.secret_patterns.values()
        if p.placeholder is not None
    )
    globs = [g for p in ruleset.secret_patterns.values() for g in p.scope_globs]
    globs += [
        g for r in ruleset.rules.values() for m in r.matchers if m.content and m.path for g in m.path_globs
    ]
    exact, wild, dirs = _prefilter(globs)
    return ContentPlan(
        tuple(ruleset.yara_sources),
        tuple(ruleset.yara_scoped),
        scope,
        scoped_targets,
        secret,
        after,
        ruleset.version,
        placeholders,
        exact,
        wild,
        dirs,
    )


def _prefilter(globs: list[str]) -> tuple[tuple, tuple, tuple]:
    """Index scoped globs by their last component: most files are ruled out by one dict lookup."""
    from .loader import glob_to_regex

    exact, wild, dirs = [], [], []
    for glob in sorted(set(globs)):
        full = glob_to_regex(glob) + r"\Z"
        head, _, last = glob.rpartition("/")
        if last == "**":
            cut = min((i for i, c in enumerate(head) if c in "*?[{"), default=len(head))
            dirs.append((head[:cut], full))
        elif any(c in last for c in "*?[{"):
            parent = head.rpartition("/")[2]
            needle = f"/{parent}/" if parent and not any(c in parent for c in "*?[{") else ""
            pre, star, suf = last.partition("*")
            if star and not any(c in pre + suf for c in "*?[{"):  # "prefix*suffix": no regex needed
                wild.append((pre, suf, needle, "", full))
            else:
                wild.append(("", "", needle, glob_to_regex(last) + r"\Z", full))
        else:
            exact.append((last, full))
    return tuple(exact), tuple(wild), tuple(dirs)
