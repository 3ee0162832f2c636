"""Rules on one assembled image: the config, the history, every file entry (the graveyard included),
the content hits the layer walk collected, and the checks data cannot express (package integrity,
setuid ownership, the graveyard, ``/etc/ld.so.preload``, mutable tags).

Nothing here reads a layer: file bytes were seen once, during the pass (:mod:`.content`).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable

from ..model import Change, EntryType, FileEntry, Finding, GraveyardEntry, ImageResult, Severity, fingerprint
from .content import (
    BOTH,
    DOCS,
    MD5,
    SHA1,
    ContentPlan,
    LayerContent,
    printable,
    redact,
    scan_text,
    wants_digests,
)
from .loader import Matcher, Rule, RuleSet
from .packages import PackageDB, parse_apk, parse_dpkg, parse_os_release, parse_passwd

SYSTEM_BIN = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/libexec/")
SYSTEM_LIB = re.compile(r"^/(usr/)?lib(32|64|x32)?/")
SYSTEM_PATHS = SYSTEM_BIN + ("/lib", "/usr/lib")
CACHE_RE = re.compile(
    r"^/(tmp|var/tmp|var/cache|var/log|run|var/run|var/lib/apt/lists|root/\.cache|"
    r"home/[^/]+/\.cache|root/\.npm|root/\.cargo/registry)/|/__pycache__/|\.pyc$"
)
LIBRARY_RE = re.compile(r"\.so(\.[0-9]+)*$|\.so\.|\.a$")
MAX_INDIVIDUAL = 200  # per-rule cap for bulk findings (unverified files); the rest are summarised


def _printable(text: str, limit: int = 160) -> str:
    return printable(text.encode("utf-8", "surrogateescape"), limit)


class Evaluator:
    def __init__(
        self,
        image: ImageResult,
        contents: list[LayerContent | None],
        ruleset: RuleSet,
        plan: ContentPlan,
        reference: str = "",
    ) -> None:
        self.image = image
        self.rs = ruleset
        self.plan = plan
        self.reference = reference
        self.contents = contents
        self.layers = {layer.index: layer for layer in image.layers}
        self.final: dict[str, FileEntry] = {}
        self.by_key: dict[tuple[str, int], FileEntry] = {}
        for entry in image.files:
            if entry.change is Change.DELETED:
                continue
            self.by_key[(entry.path, entry.layer_index)] = entry
            if entry.visible:
                self.final[entry.path] = entry
        self.graves: dict[tuple[str, int], GraveyardEntry] = {}
        for grave in image.graveyard:
            self.graves[(grave.path, grave.added_layer)] = grave
        self.findings: list[Finding] = []
        self.seen: set[str] = set()
        self.on_file: dict[tuple[str, int], list[Finding]] = {}  # (path, layer) -> findings on that content
        self.config = image.config.get("config") if isinstance(image.config.get("config"), dict) else {}
        self.db: PackageDB | None = None
        self._dir_cache: dict[str, str | None] = {}
        self._sha_maps: tuple[dict[str, str], dict[str, str]] | None = None

    # -- emitting ---------------------------------------------------------------------------------
    def add(
        self,
        rule_id: str,
        detail: str,
        *,
        layer: int | None = None,
        path: str = "",
        sha256: str = "",
        key: str = "",
        excerpt: str = "",
        severity: Severity | None = None,
        hidden: int | None = None,
        title: str = "",
    ) -> Finding | None:
        rule = self.rs.rules.get(rule_id)
        if rule is None:
            return None
        lr = self.layers.get(layer) if layer is not None else None
        fp = fingerprint(rule_id, lr.diff_id if lr else "", path, sha256, key)
        if fp in self.seen:
            return None
        self.seen.add(fp)
        finding = Finding(
            rule_id=rule_id,
            severity=self.rs.severity(rule_id, severity or rule.severity),
            title=title or rule.title,
            detail=detail,
            layer_index=layer,
            layer_digest=lr.digest if lr else "",
            path=path,
            sha256=sha256,
            fingerprint=fp,
            excerpt=excerpt,
            remediation=rule.remediation,
            hidden_layer_index=hidden,
        )
        self.findings.append(finding)
        if path and layer is not None:
            self.on_file.setdefault((path, layer), []).append(finding)
        return finding

    def where(self, entry: FileEntry) -> tuple[int | None, str]:
        """The layer that hid this entry (if it is gone from the final view) and a sentence about it."""
        if entry.visible:
            return None, ""
        grave = self.graves.get((entry.path, entry.layer_index))
        if grave is None:
            return None, ""
        verb = {
            "whiteout": "deleted (whiteout)",
            "opaque": "deleted (opaque directory)",
            "shadowed": "overwritten",
            "duplicate": "overwritten in the same layer",
        }.get(grave.how, grave.how)
        return grave.hidden_layer, (
            f" {verb} by layer {grave.hidden_layer}, but still in layer "
            f"{entry.layer_index}: recover it with `python -m scanner cat SOURCE "
            f"--layer {entry.layer_index} {entry.path}`."
        )

    def add_file(self, rule_id: str, entry: FileEntry, detail: str, **kw) -> Finding | None:
        hidden, sentence = self.where(entry)
        return self.add(
            rule_id,
            detail + sentence,
            layer=entry.layer_index,
            path=entry.path,
            sha256=entry.sha256,
            hidden=hidden,
            **kw,
        )

    # -- the whole evaluation ------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        self._distro_and_packages()
        rules = list(self.rs.rules.values())
        for rule in rules:
            for matcher in rule.matchers:
                if matcher.kind == "config.user":
                    self._user(rule, matcher)
                elif matcher.kind in ("config.env", "config.labels"):
                    self._env(rule, matcher)
                elif matcher.kind == "history.created_by":
                    self._history(rule, matcher)
                elif matcher.kind == "secrets" and matcher.name == "env":
                    self._secrets_env(rule)
        self._content_hits()
        for rule in rules:
            for matcher in rule.matchers:
                if matcher.kind == "file" and not matcher.content:
                    self._file_rule(rule, matcher)
        checks = {
            "setuid": self._setuid,
            "package-modified": self._package_integrity,
            "unowned-binary": self._unowned,
            "ld-so-preload": self._ld_so_preload,
            "mutable-tag": self._mutable_tag,
            "content-skipped": self._content_skipped,
        }
        for rule in rules:
            for matcher in rule.matchers:
                if matcher.kind == "python" and matcher.name in checks:
                    checks[matcher.name](rule)
        # last: the graveyard links to what was found on the hidden content
        for rule in rules:
            if (
                rule.matchers
                and rule.matchers[0].kind == "python"
                and rule.matchers[0].name == "deleted-file"
            ):
                self._deleted(rule)
        self._suppress()
        return self.findings

    # -- config and history ------------------------------------------------------------------------
    def _passwd(self) -> dict[str, int]:
        data = self.captured("/etc/passwd")
        return parse_passwd(data) if data else {}

    def _user(self, rule: Rule, m: Matcher) -> None:
        raw = self.config.get("User") if isinstance(self.config.get("User"), str) else ""
        raw = raw.strip()
        forms = [raw]
        name = raw.split(":", 1)[0]
        uid = None
        if name and not name.isdigit():
            uid = self._passwd().get(name)
            if uid is not None:
                forms.append(str(uid) + raw[len(name) :])
        if any(f in m.values or (m.regex is not None and m.regex.fullmatch(f)) for f in forms):
            shown = f"User is {raw!r}" if raw else "User is not set (the default is root)"
            if uid is not None and forms[-1] != raw:
                shown += f", uid {uid} in /etc/passwd"
            self.add(
                rule.id,
                f"{shown}: every process of the container runs as root.",
                key=f"user:{raw}",
                excerpt=_printable(raw),
            )

    def _env_items(self, kind: str) -> list[tuple[str, str]]:
        if kind == "config.env":
            env = self.config.get("Env")
            out = []
            for item in env if isinstance(env, list) else []:
                if isinstance(item, str):
                    name, _, value = item.partition("=")
                    out.append((name, value))
            return out
        labels = self.config.get("Labels")
        return [(str(k), str(v)) for k, v in labels.items()] if isinstance(labels, dict) else []

    def _env(self, rule: Rule, m: Matcher) -> None:
        what = "Env" if m.kind == "config.env" else "Labels"
        secret = rule.id.startswith("secret.")
        for name, value in self._env_items(m.kind):
            if not m.names.match(name) or (m.names_not is not None and m.names_not.match(name)):
                continue
            if m.value is not None and not m.value.search(value):
                continue
            if m.value_not is not None and m.value_not.search(value):
                continue
            excerpt = f"{name}={redact(value)}" if secret else _printable(f"{name}={value}")
            shown = (
                f"{what} {name} (value redacted)"
                if secret
                else f"{what} {_printable(name)}={_printable(value)}"
            )
            self.add(rule.id, f"{shown} in the image config.", key=f"{what}:{name}", excerpt=excerpt)

    def _history_items(self) -> list[tuple[str, int | None, str]]:
        items: list[tuple[str, int | None, str]] = []
        for layer in self.image.layers:
            for step in layer.empty_history:
                items.append((step, None, f"a history step before layer {layer.index}"))
            items.append(
                (layer.created_by, layer.index, f"the history step that created layer {layer.index}")
            )
        for step in self.image.trailing_history:
            items.append((step, None, "a history step after the last layer"))
        return [item for item in items if item[0]]

    def _history(self, rule: Rule, m: Matcher) -> None:
        secret = rule.id.startswith("secret.")
        for n, (command, layer, where) in enumerate(self._history_items()):
            found = next((mt for p in m.patterns if (mt := p.search(command))), None)
            if found is None or any(u.search(command) for u in m.unless):
                continue
            if secret:
                value = found.groupdict().get("value") or found.group(0)
                excerpt = redact(value)
                value_sha = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
                key = f"history:{layer}:{n}:{value_sha}"
                detail = f"A credential in {where} (redacted)."
            else:
                excerpt = self.scrub(command)
                key = f"history:{layer}:{n}"
                detail = f"In {where}: {self.scrub(found.group(0))}"
            self.add(rule.id, detail, layer=layer, key=key, excerpt=excerpt)

    def scrub(self, text: str, limit: int = 240) -> str:
        """``text`` for display with every secret the patterns find in it redacted."""
        data = text.encode("utf-8", "surrogateescape")
        spans = sorted(
            (off, off + length, excerpt)
            for ns, ident, off, length, excerpt, _sha, _meta in scan_text(self.plan, data)
            if (ns, ident) in self.plan.secret_idents
        )
        out, pos = [], 0
        for start, end, excerpt in spans:
            if start < pos:
                continue
            out.append(data[pos:start].decode("utf-8", "backslashreplace"))
            out.append(excerpt)
            pos = end
        out.append(data[pos:].decode("utf-8", "backslashreplace"))
        return _printable("".join(out), limit)

    def _secrets_env(self, rule: Rule) -> None:
        """Secret patterns over the config's Env, Labels, Cmd/Entrypoint and every history step."""
        lines: list[tuple[str, str, int | None, str]] = []  # (text, location key, layer, description)
        for name, value in self._env_items("config.env"):
            lines.append((f"{name}={value}", f"Env:{name}", None, f"Env {name}"))
        for name, value in self._env_items("config.labels"):
            lines.append((f"{name}={value}", f"Labels:{name}", None, f"label {name}"))
        for key in ("Cmd", "Entrypoint"):
            value = self.config.get(key)
            if isinstance(value, list):
                lines.append((" ".join(str(v) for v in value), key, None, key))
        for n, (command, layer, where) in enumerate(self._history_items()):
            lines.append((command, f"history:{layer}:{n}", layer, where))
        if not lines:
            return
        starts, chunks, pos = [], [], 0
        for text, *_ in lines:
            starts.append(pos)
            chunk = text.encode("utf-8", "surrogateescape") + b"\n"
            chunks.append(chunk)
            pos += len(chunk)
        for ns, ident, off, _length, excerpt, value_sha, meta in scan_text(self.plan, b"".join(chunks)):
            target = self.rs.yara_targets.get((ns, ident)) or self.rs.yara_targets.get((ns, "*"))
            if target is None:
                continue
            text, loc, layer, where = lines[bisect.bisect_right(starts, off) - 1]
            if target.kind == "secret":
                pattern = self.rs.secret_patterns[target.ref]
                if "env" not in pattern.targets:
                    continue
                name = loc.split(":", 1)[1] if loc.startswith(("Env:", "Labels:")) else ""
                self.add(
                    rule.id,
                    f"{pattern.title} in {where} (redacted).",
                    layer=layer,
                    key=loc if name else f"{loc}:{value_sha}",
                    excerpt=excerpt,
                )
            elif target.kind == "yara":
                meta_d = dict(meta)
                self.add(
                    target.ref,
                    f"YARA-X rule {ident} matched {where}"
                    f"{': ' + meta_d['description'] if meta_d.get('description') else ''}.",
                    layer=layer,
                    key=f"{loc}:{ident}",
                    excerpt=excerpt,
                    severity=_severity(meta_d.get("severity")),
                )

    # -- files ------------------------------------------------------------------------------------------
    def _entries(self) -> Iterable[FileEntry]:
        return (e for e in self.image.files if e.change is not Change.DELETED)

    @staticmethod
    def _file_ok(m: Matcher, entry: FileEntry) -> bool:
        if m.path is not None and not m.path.match(entry.path):
            return False
        if m.types and str(entry.type) not in m.types:
            return False
        if m.mode_any and not (entry.mode & m.mode_any and entry.type is not EntryType.SYMLINK):
            return False
        if m.flags_any and not (entry.flags & m.flags_any):
            return False
        if m.size_max is not None and entry.size > m.size_max:
            return False
        return not (m.visible_only and not entry.visible)

    def _file_rule(self, rule: Rule, m: Matcher) -> None:
        # dot-file globs (every glob names a "/." component) can skip most paths without the regex
        dots = bool(m.path_globs) and all("/." in g for g in m.path_globs)
        for entry in self._entries():
            if dots and "/." not in entry.path:
                continue
            if self._file_ok(m, entry):
                self.add_file(
                    rule.id,
                    entry,
                    f"{entry.path} ({entry.type}, mode {entry.mode:04o}, "
                    f"{entry.size} bytes) matches {', '.join(m.path_globs) or 'the rule'}.",
                )

    def _content_hits(self) -> None:
        secret_seen: set[tuple[str, int, str]] = set()
        for layer, content in enumerate(self.contents):
            if content is None:
                continue
            for path, ns, ident, count, excerpt, value_sha, offset, meta in content.hits:
                entry = self.by_key.get((path, layer))
                target = self.rs.yara_targets.get((ns, ident)) or self.rs.yara_targets.get((ns, "*"))
                if entry is None or target is None:
                    continue
                times = f"{count} match{'es' if count != 1 else ''}, first at byte {offset}"
                if target.kind == "secret":
                    pattern = self.rs.secret_patterns[target.ref]
                    if "file" not in pattern.targets or (path, layer, value_sha) in secret_seen:
                        continue
                    secret_seen.add((path, layer, value_sha))
                    detail, severity = f"{pattern.title} in {path} ({times}; redacted).", None
                    if entry.visible and self.verified(entry):
                        # The distribution's own file, byte for byte (its package database checksum
                        # matches): a key or URL it ships (test vectors, documentation), not a leak.
                        # Still reported, as info: nothing is dropped silently.
                        owner = self.owned[entry.path][1].package
                        detail += (
                            f" The file is package {owner}'s, unmodified (its checksum matches the "
                            "package database): shipped by the distribution, not added by this image."
                        )
                        severity = Severity.INFO
                    self.add_file(
                        "secret.file",
                        entry,
                        detail,
                        key=f"{pattern.id}:{value_sha}",
                        excerpt=excerpt,
                        severity=severity,
                    )
                elif target.kind == "rule":
                    rule = self.rs.rules.get(target.ref)
                    if rule is None:
                        continue
                    m = next((mm for mm in rule.matchers if mm.content == ident), None)
                    if m is None or not self._file_ok(m, entry):
                        continue
                    self.add_file(
                        rule.id, entry, f"{path}: content matched ({times}).", key=ident, excerpt=excerpt
                    )
                else:
                    meta_d = dict(meta)
                    rule_id = str(meta_d.get("lowerdir_rule") or target.ref)
                    if rule_id not in self.rs.rules:
                        rule_id = "malware.yara"
                    desc = meta_d.get("description") or target.description
                    self.add_file(
                        rule_id,
                        entry,
                        f"YARA-X rule {ident} matched {path} ({times}){': ' + str(desc) if desc else ''}.",
                        key=f"{ns}:{ident}",
                        excerpt=excerpt,
                        severity=_severity(meta_d.get("severity") or target.severity),
                    )

    # -- captured files, symlink resolution ------------------------------------------------------------
    def captured(self, path: str) -> bytes | None:
        entry = self.final.get(path)
        if entry is None or entry.type is not EntryType.FILE:
            return None
        content = self.contents[entry.layer_index] if entry.layer_index < len(self.contents) else None
        return content.captured.get(path) if content is not None else None

    def captured_under(self, prefix: str) -> dict[str, bytes]:
        out = {}
        for path, entry in self.final.items():
            if path.startswith(prefix) and entry.type is EntryType.FILE:
                data = self.captured(path)
                if data is not None:
                    out[path] = data
        return out

    def resolve(self, path: str, *, follow_last: bool = False, hops: int = 40) -> str | None:
        """``path`` in the final tree with symlinked directories followed (``/bin/ls`` → ``/usr/bin/ls``
        when ``/bin`` links to ``usr/bin``); None for a loop."""
        parts = [p for p in path.split("/") if p]
        out: list[str] = []
        i = 0
        while i < len(parts):
            comp = parts[i]
            if comp == ".":
                i += 1
                continue
            if comp == "..":
                if out:
                    out.pop()
                i += 1
                continue
            cur = "/" + "/".join([*out, comp])
            entry = self.final.get(cur)
            if entry is not None and entry.type is EntryType.SYMLINK and (follow_last or i < len(parts) - 1):
                hops -= 1
                if hops < 0:
                    return None
                target = [p for p in entry.link_target.split("/") if p]
                parts = ([] if entry.link_target.startswith("/") else out) + target + parts[i + 1 :]
                out, i = [], 0
                continue
            out.append(comp)
            i += 1
        return "/" + "/".join(out)

    def resolve_dir(self, path: str) -> str | None:
        parent, _, base = path.rpartition("/")
        if parent not in self._dir_cache:
            self._dir_cache[parent] = self.resolve(parent, follow_last=True) if parent else ""
        resolved = self._dir_cache[parent]
        if resolved is None:
            return None
        return (resolved.rstrip("/") + "/" + base) if resolved != "/" else "/" + base

    # -- packages ----------------------------------------------------------------------------------------
    def _distro_and_packages(self) -> None:
        os_release = self.captured("/etc/os-release") or self.captured("/usr/lib/os-release")
        if os_release is None:
            target = self.final.get("/etc/os-release")
            if target is not None and target.type is EntryType.SYMLINK:
                resolved = self.resolve("/etc/os-release", follow_last=True)
                os_release = self.captured(resolved) if resolved else None
        self.image.distro = parse_os_release(os_release) if os_release else {}
        status = self.captured("/var/lib/dpkg/status")
        status_d = self.captured_under("/var/lib/dpkg/status.d/")
        if status or status_d:
            md5sums = {
                p: d for p, d in self.captured_under("/var/lib/dpkg/info/").items() if p.endswith(".md5sums")
            }
            md5sums.update({p: d for p, d in status_d.items() if p.endswith(".md5sums")})
            self.db = parse_dpkg(status or b"", status_d, md5sums, self.captured("/var/lib/dpkg/diversions"))
        else:
            apk = self.captured("/lib/apk/db/installed") or self.captured("/usr/lib/apk/db/installed")
            if apk:
                self.db = parse_apk(apk)
        self.owned: dict[str, tuple[str, object]] = {}  # resolved final path -> (db path, Owned)
        if self.db is not None:
            self.image.packages = list(self.db.packages)
            diverted = self.db.diversions
            for db_path, owned in self.db.files.items():
                path = db_path
                div = diverted.get(db_path)
                if div is not None and div[1] != owned.package:
                    path = div[0]
                resolved = self.resolve_dir(path)
                if resolved is not None:
                    self.owned[resolved] = (db_path, owned)

    def _digest_of(self, entry: FileEntry, algorithm: str) -> str | None:
        content = self.contents[entry.layer_index] if entry.layer_index < len(self.contents) else None
        if content is None:
            return None
        digests = content.digests.get(entry.path)
        value = (digests[0] if algorithm == "md5" else digests[1]) if digests is not None else ""
        if not value and entry.sha256:
            # Content-addressed: the same bytes elsewhere in the image (say, the package's original in
            # a lower layer, re-added unchanged by a chown) have the same digest.
            value = self._by_sha()[0 if algorithm == "md5" else 1].get(entry.sha256, "")
        return value or None

    def _by_sha(self) -> tuple[dict[str, str], dict[str, str]]:
        """sha256 -> md5 and sha256 -> sha1, over every digest computed in the pass."""
        if self._sha_maps is None:
            md5s: dict[str, str] = {}
            sha1s: dict[str, str] = {}
            for layer, content in enumerate(self.contents):
                if content is None:
                    continue
                for path, (md5, sha1) in content.digests.items():
                    entry = self.by_key.get((path, layer))
                    if entry is None or not entry.sha256:
                        continue
                    if md5:
                        md5s[entry.sha256] = md5
                    if sha1:
                        sha1s[entry.sha256] = sha1
            self._sha_maps = (md5s, sha1s)
        return self._sha_maps

    def _known_content(self, algorithm: str, digest: str) -> set[str]:
        """The sha256s of every file in the image whose ``algorithm`` digest is ``digest``."""
        table = self._by_sha()[0 if algorithm == "md5" else 1]
        return {sha for sha, d in table.items() if d == digest}

    def verified(self, entry: FileEntry) -> bool | None:
        """True: the package database lists this file with this content; False: different content;
        None: not listed, or its digest is unknown."""
        owned = self.owned.get(entry.path)
        if owned is None or not owned[1].digest:
            return None
        actual = self._digest_of(entry, owned[1].algorithm)
        if actual is None:
            return None
        return actual == owned[1].digest

    def _kind(self, entry: FileEntry) -> str:
        content = self.contents[entry.layer_index] if entry.layer_index < len(self.contents) else None
        if "elf" in entry.flags:
            return "ELF library" if LIBRARY_RE.search(entry.path) else "ELF executable"
        if content is not None and entry.path in content.scripts:
            return "script"
        if "executable" in entry.flags:
            return "executable"
        if LIBRARY_RE.search(entry.path):
            return "library"
        return ""

    def _package_integrity(self, rule: Rule) -> None:
        if self.db is None:
            return
        unverified: list[tuple[FileEntry, str, object]] = []
        for path, (db_path, owned) in sorted(self.owned.items()):
            entry = self.final.get(path)
            if entry is None or entry.type not in (EntryType.FILE, EntryType.HARDLINK) or not owned.digest:
                continue
            if path.startswith(DOCS):
                continue  # documentation and translations: not verified, by design (docs/rules.md)
            actual = self._digest_of(entry, owned.algorithm)
            if actual is None:
                # The package's own bytes may be known from elsewhere in the image (the original in a
                # lower layer): different sha256, different content.
                known = self._known_content(owned.algorithm, owned.digest)
                if not known:
                    unverified.append((entry, db_path, owned))
                    continue
                actual = f"unknown (sha256 {entry.sha256} is not the package's {', '.join(sorted(known))})"
            if actual == owned.digest:
                continue
            kind = self._kind(entry)
            if owned.conffile:
                severity, what = Severity.INFO, "a configuration file (conffile: changes are expected)"
            elif kind:
                severity, what = Severity.CRITICAL, f"an {kind}" if kind[0] in "aeiouE" else f"a {kind}"
            else:
                severity, what = Severity.MEDIUM, "a file"
            alias = f" (listed as {db_path})" if db_path != path else ""
            changed = (
                ""
                if self._db_layer() == entry.layer_index
                else f" The file was written by layer {entry.layer_index}, not by the package manager's "
                "layer."
            )
            self.add_file(
                rule.id,
                entry,
                f"{path}{alias} is {what} of package {owned.package} whose content differs from the "
                f"package database: {owned.algorithm} {actual}, expected {owned.digest}.{changed}",
                severity=severity,
                key=f"{owned.algorithm}:{actual}",
            )
        if unverified and "package.unverified-file" in self.rs.rules:
            for entry, _db_path, owned in unverified[:MAX_INDIVIDUAL]:
                kind = self._kind(entry)
                severity = Severity.MEDIUM if kind else Severity.LOW
                why = (
                    "it is outside the paths hashed during the pass"
                    if not wants_digests(entry.path)
                    else f"layer {entry.layer_index} looked like another package manager's, so its "
                    f"{owned.algorithm.upper()} was not computed"
                )
                self.add_file(
                    "package.unverified-file",
                    entry,
                    f"{entry.path} belongs to package {owned.package} but could not be verified: {why}.",
                    severity=severity,
                )
            if len(unverified) > MAX_INDIVIDUAL:
                self.add(
                    "package.unverified-file",
                    f"{len(unverified) - MAX_INDIVIDUAL} more files listed by "
                    "the package database could not be verified.",
                    key="more",
                    severity=Severity.LOW,
                )

    def _db_layer(self) -> int | None:
        entry = self.final.get("/var/lib/dpkg/status") or self.final.get("/lib/apk/db/installed")
        return entry.layer_index if entry else None

    def _unowned(self, rule: Rule) -> None:
        if self.db is None or not self.owned:
            return  # without a package database nothing can be said about ownership
        for path, entry in self.final.items():
            if entry.type not in (EntryType.FILE, EntryType.HARDLINK) or path in self.owned:
                continue
            in_bin = path.startswith(SYSTEM_BIN)
            if not (in_bin or SYSTEM_LIB.match(path)):
                continue
            if not ("elf" in entry.flags or (in_bin and "executable" in entry.flags)):
                continue
            kind = self._kind(entry) or "executable"
            self.add_file(
                rule.id,
                entry,
                f"{path} is {'an' if kind[0] in 'aeiouE' else 'a'} {kind} in a system "
                f"path that no package of the {self.db.manager} database owns "
                f"(added by layer {entry.layer_index}).",
            )

    # -- setuid, ld.so.preload, tags -----------------------------------------------------------------------
    def _setuid(self, rule: Rule) -> None:
        for entry in self._entries():
            if entry.type not in (EntryType.FILE, EntryType.HARDLINK) or not entry.mode & 0o6000:
                continue
            bits = "setuid" if entry.mode & 0o4000 else ""
            bits = "+".join(b for b in (bits, "setgid" if entry.mode & 0o2000 else "") if b)
            reasons = []
            if "hidden" in entry.flags or "/." in entry.path:
                reasons.append("hidden (a dot-file)")
            if not entry.path.startswith(SYSTEM_PATHS):
                reasons.append("outside the system binary and library directories")
            verdict = self.verified(entry) if entry.visible else None
            owner = self.owned.get(entry.path)
            if entry.visible:
                if verdict is False:
                    reasons.append(f"modified: its content differs from package {owner[1].package}'s")
                elif verdict is None and owner is None:
                    reasons.append(
                        "not owned by any package"
                        if self.db is not None
                        else "no package database to vouch for it"
                    )
                elif verdict is None:
                    reasons.append(
                        f"listed by package {owner[1].package} but its digest could not be checked"
                    )
            else:
                grave = self.graves.get((entry.path, entry.layer_index))
                final = self.final.get(entry.path)
                if (
                    grave is not None
                    and grave.how in ("shadowed", "duplicate")
                    and final is not None
                    and self.verified(final)
                    and not reasons
                ):
                    self.add_file(
                        rule.id,
                        entry,
                        f"{entry.path} ({bits}, mode {entry.mode:04o}): an older "
                        "version of a package-owned file, replaced by a package upgrade.",
                        severity=Severity.LOW,
                    )
                    continue
                reasons.append("deleted or overwritten by a later layer: hidden, yet still in the image")
            if reasons:
                self.add_file(
                    rule.id,
                    entry,
                    f"{entry.path} is {bits} (mode {entry.mode:04o}, uid {entry.uid}) "
                    f"and {'; '.join(reasons)}.",
                    severity=Severity.HIGH,
                )
            else:
                self.add_file(
                    rule.id,
                    entry,
                    f"{entry.path} is {bits} (mode {entry.mode:04o}) and package "
                    f"{owner[1].package} owns it with a matching checksum.",
                    severity=Severity.INFO,
                )

    def _ld_so_preload(self, rule: Rule) -> None:
        entry = self.final.get("/etc/ld.so.preload")
        if entry is None:
            return
        data = self.captured("/etc/ld.so.preload")
        if data is None:
            return
        names = [
            w
            for line in data.decode("utf-8", "backslashreplace").splitlines()
            for w in line.split("#", 1)[0].replace(":", " ").split()
            if w
        ]
        if not names:
            return
        described = []
        for name in names[:20]:
            resolved = self.resolve(name, follow_last=True) if name.startswith("/") else None
            lib = self.final.get(resolved) if resolved else None
            if lib is not None and lib.type in (EntryType.FILE, EntryType.HARDLINK):
                described.append(f"{_printable(name)} (layer {lib.layer_index}, sha256 {lib.sha256})")
            else:
                described.append(f"{_printable(name)} (not in the image)")
        self.add_file(
            rule.id,
            entry,
            f"/etc/ld.so.preload makes every dynamically linked program load {', '.join(described)}.",
            excerpt=_printable(" ".join(names)),
        )

    def _mutable_tag(self, rule: Rule) -> None:
        ref = self.reference.strip()
        if ref and "@sha256:" in ref:
            return  # pulled by digest
        names = [ref] if ref else list(self.image.repo_tags)
        for name in names:
            if "@" in name:
                continue
            last = name.rsplit("/", 1)[-1]
            tag = last.rsplit(":", 1)[1] if ":" in last else ("latest" if "/" in name or ref else last)
            severity = Severity.MEDIUM if tag == "latest" else Severity.LOW
            source = "the reference it was pulled by" if ref else "the archive's image names"
            self.add(
                rule.id,
                f"The image is known by the tag {_printable(name)!s} ({source}), not by a digest: "
                "a tag can be moved to other content at any time.",
                key=f"tag:{name}",
                severity=severity,
                excerpt=_printable(name),
            )

    def _content_skipped(self, rule: Rule) -> None:
        count = sum(c.skipped_count for c in self.contents if c is not None)
        errors = [(i, p, msg) for i, c in enumerate(self.contents) if c is not None for p, msg in c.errors]
        if not count and not errors:
            return
        listed = [
            (i, p, size, why)
            for i, c in enumerate(self.contents)
            if c is not None
            for p, size, why in c.skipped
        ]
        listed.sort(key=lambda x: -x[2])
        sample = "; ".join(f"{_printable(p)} (layer {i}, {size} bytes)" for i, p, size, _why in listed[:5])
        parts = []
        if count:
            parts.append(
                f"{count} files over the content-scan bounds were hashed but not pattern-scanned"
                f"{': ' + sample if sample else ''}"
            )
        if errors:
            parts.append("; ".join(f"{_printable(p)} (layer {i}): {msg}" for i, p, msg in errors[:5]))
        self.add(rule.id, ". ".join(parts) + ".", key=f"skipped:{count}:{len(errors)}")

    # -- the graveyard -----------------------------------------------------------------------------------
    def _deleted(self, rule: Rule) -> None:
        for grave in self.image.graveyard:
            if grave.type is EntryType.DIR:
                continue
            entry = self.by_key.get((grave.path, grave.added_layer))
            flags = entry.flags if entry is not None else frozenset()
            content = self.contents[grave.added_layer] if grave.added_layer < len(self.contents) else None
            related = [
                f
                for f in self.on_file.get((grave.path, grave.added_layer), [])
                if f.rule_id != rule.id and f.severity.rank >= Severity.MEDIUM.rank
            ]
            setuid = bool(grave.mode & 0o6000) and grave.type is not EntryType.SYMLINK
            executable = bool(flags & {"executable", "elf"}) or (
                content is not None and grave.path in content.scripts
            )
            cache = bool(CACHE_RE.search(grave.path))
            removed = grave.how in ("whiteout", "opaque")
            what = []
            if related:
                what.append("; ".join(sorted({f.rule_id for f in related})) + " on it")
            if setuid:
                what.append("setuid/setgid")
            if executable:
                what.append("executable")
            if related or setuid or (executable and removed):
                severity = Severity.HIGH
                final = self.final.get(grave.path)
                if not related and not removed and final is not None and self.verified(final):
                    severity = Severity.LOW  # an upgraded package file
            elif cache:
                severity = Severity.INFO
            elif removed or executable:
                severity = Severity.LOW
            else:
                severity = Severity.INFO
            verb = {
                "whiteout": "deleted (whiteout)",
                "opaque": "removed by an opaque directory",
                "shadowed": "overwritten",
                "duplicate": "overwritten in the same layer",
            }.get(grave.how, grave.how)
            kind = f" ({', '.join(what)})" if what else " (cache or temporary file)" if cache else ""
            finding = self.add(
                rule.id,
                f"{grave.path}{kind}, added by layer {grave.added_layer}, was {verb} by "
                f"layer {grave.hidden_layer} but is still in the image: recover it with "
                f"`python -m scanner cat SOURCE --layer {grave.added_layer} {grave.path}`.",
                layer=grave.added_layer,
                path=grave.path,
                sha256=grave.sha256,
                key=f"{grave.how}:{grave.hidden_layer}",
                severity=severity,
                hidden=grave.hidden_layer,
            )
            if finding is not None and related:
                finding.related = [f.fingerprint for f in related]
                for f in related:
                    f.related.append(finding.fingerprint)

    # -- suppressions --------------------------------------------------------------------------------------
    def _suppress(self) -> None:
        if not self.rs.suppressions:
            return
        for f in self.findings:
            sup = self.rs.suppression_for(f.rule_id, f.path, f.fingerprint)
            if sup is not None:
                f.suppressed = True
                f.suppression = sup.describe()


def _severity(value: object) -> Severity | None:
    if isinstance(value, str) and value in {s.value for s in Severity}:
        return Severity(value)
    return None


def family_bits(content: LayerContent | None) -> str:
    if content is None:
        return ""
    return {0: "", MD5: "md5", SHA1: "sha1", BOTH: "md5+sha1"}[content.hints]


def evaluate(
    image: ImageResult,
    contents: list[LayerContent | None],
    ruleset: RuleSet,
    plan: ContentPlan,
    reference: str = "",
) -> None:
    """Run every rule on ``image`` and append the findings (the engine's own findings stay)."""
    found = Evaluator(image, contents, ruleset, plan, reference).run()
    # suppressions also apply to the engine's own findings (integrity.*)
    for f in image.findings:
        sup = ruleset.suppression_for(f.rule_id, f.path, f.fingerprint)
        if sup is not None:
            f.suppressed, f.suppression = True, sup.describe()
        rule = ruleset.rules.get(f.rule_id)
        if rule is not None and not f.remediation:
            f.remediation = rule.remediation
        if f.rule_id in ruleset.overrides:
            f.severity = ruleset.overrides[f.rule_id][0]
    image.findings.extend(found)
