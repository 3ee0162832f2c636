"""Load and validate rule files: YAML rules, secret patterns, overrides, suppressions, YARA-X sources.

A rule folder holds ``*.yml`` / ``*.yaml`` files and ``*.yar`` files. Built-in rules live in
``scanner/rules/``; more folders come from ``LOWERDIR_RULES_DIRS`` (``os.pathsep``-separated) and
``--rules DIR``. Every problem is a :class:`RuleError` naming the file, the line and what is wrong, so a
broken rule file stops a scan with one readable line (exit 2) instead of silently matching nothing.

A YAML file is a mapping with any of these keys::

    rules:            # detection rules (see docs/rules.md for the match language)
    secret_patterns:  # credential patterns, used in file content (secret.file) and the config (secret.env)
    overrides:        # change a rule's severity for this deployment: {id, severity, reason}
    suppressions:     # explicit, visible exceptions: {rule | fingerprint, path?, reason, by, expires?}
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..model import ScanError, Severity

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "rules"
ENV_DIRS = "LOWERDIR_RULES_DIRS"
RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")
PATTERN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
TOP_KEYS = ("rules", "secret_patterns", "overrides", "suppressions")
RULE_KEYS = ("id", "severity", "title", "description", "remediation", "references", "severity_note", "match")
MATCH_KINDS = (
    "config.user",
    "config.env",
    "config.labels",
    "history.created_by",
    "file",
    "python",
    "engine",
    "yara",
    "secrets",
)
# Python checks (what data cannot express): the rule ids each may emit are declared in the YAML.
PYTHON_CHECKS = (
    "setuid",
    "deleted-file",
    "package-modified",
    "package-unverified",
    "unowned-binary",
    "ld-so-preload",
    "mutable-tag",
    "content-skipped",
)
FILE_TYPES = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo")
MODE_BITS = {
    "setuid": 0o4000,
    "setgid": 0o2000,
    "sticky": 0o1000,
    "world-writable": 0o002,
    "executable": 0o111,
}
FILE_FLAGS = ("elf", "hidden", "executable", "setuid", "setgid", "sticky", "world-writable")
SECRET_TARGETS = ("file", "env")


class RuleError(ScanError):
    """A rule file is broken: the message names the file, the line and the problem."""


# -- YAML with line numbers ---------------------------------------------------------------------------


class Node(dict):
    """A YAML mapping that remembers where it and each of its values were written."""

    line: int = 0
    lines: dict

    def at(self, key: str) -> int:
        return self.lines.get(key, self.line)


class Seq(list):
    line: int = 0
    lines: list


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when available
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    out = Node()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is not a string", key_node.start_mark
            )
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = value_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Seq:
    out = Seq(loader.construct_object(item, deep=True) for item in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [item.start_mark.line + 1 for item in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


# -- globs ----------------------------------------------------------------------------------------------


def glob_to_regex(glob: str) -> str:
    """A path glob as a regex: ``*`` and ``?`` stay inside one component, ``**`` crosses them
    (``/a/**/b`` matches ``/a/b`` too), ``[...]`` classes and ``{x,y}`` alternatives."""
    out: list[str] = []
    i, n = 0, len(glob)
    depth = 0
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                i += 2
                if i < n and glob[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                raise ValueError(f"unclosed '[' in glob {glob!r}")
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise ValueError(f"unclosed '{{' in glob {glob!r}")
    return "".join(out)


def globs_regex(globs: list[str], *, nocase: bool = False) -> re.Pattern[str]:
    flags = re.IGNORECASE if nocase else 0
    return re.compile("(?:" + "|".join(glob_to_regex(g) for g in globs) + r")\Z", flags)


# -- the rule model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    kind: str  # one of MATCH_KINDS
    # config.user
    values: frozenset[str] = frozenset()
    regex: re.Pattern[str] | None = None
    # config.env / config.labels
    names: re.Pattern[str] | None = None
    names_not: re.Pattern[str] | None = None
    value: re.Pattern[str] | None = None
    value_not: re.Pattern[str] | None = None
    # history.created_by
    patterns: tuple[re.Pattern[str], ...] = ()
    unless: tuple[re.Pattern[str], ...] = ()
    # file
    path: re.Pattern[str] | None = None
    path_globs: tuple[str, ...] = ()
    types: frozenset[str] = frozenset()
    mode_any: int = 0
    flags_any: frozenset[str] = frozenset()
    size_max: int | None = None
    visible_only: bool = False
    content: str = ""  # the generated YARA rule's identifier ("" = no content condition)
    # python / engine / secrets
    name: str = ""


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    description: str
    remediation: str
    references: tuple[str, ...]
    matchers: tuple[Matcher, ...]
    source: str  # "path:line"
    builtin: bool
    severity_note: str = ""

    @property
    def kind(self) -> str:
        return self.matchers[0].kind if self.matchers else ""


@dataclass(frozen=True)
class SecretPattern:
    id: str
    title: str
    regex: str  # YARA-X regex source (without the slashes)
    nocase: bool
    targets: frozenset[str]
    scope: re.Pattern[str] | None  # only files whose path matches (None: every candidate file)
    scope_globs: tuple[str, ...]
    # its group "value" is the secret inside the match (e.g. what follows "password=")
    value_re: re.Pattern[str] | None
    source: str
    placeholder: re.Pattern[str] | None = None  # a value it matches in full is a placeholder, not a secret


@dataclass(frozen=True)
class Suppression:
    rule: str  # a rule id, or "" with a fingerprint
    path: re.Pattern[str] | None
    path_glob: str
    fingerprint: str
    reason: str
    by: str
    expires: _dt.date | None
    source: str

    def applies(self, rule_id: str, path: str, fingerprint: str, today: _dt.date) -> bool:
        if self.expires is not None and today > self.expires:
            return False
        if self.rule and self.rule != rule_id:
            return False
        if self.fingerprint and self.fingerprint != fingerprint:
            return False
        return not (self.path is not None and not self.path.match(path))

    def describe(self) -> str:
        what = ", ".join(
            p
            for p in (
                self.rule and f"rule {self.rule}",
                self.path_glob and f"path {self.path_glob}",
                self.fingerprint and f"fingerprint {self.fingerprint[:16]}…",
            )
            if p
        )
        until = f", until {self.expires.isoformat()}" if self.expires else ""
        return f"suppressed by {self.by}: {self.reason} ({what}{until}; {self.source})"


@dataclass(frozen=True)
class YaraTarget:
    """What a YARA-X rule's match means: a secret pattern, a YAML content rule, or a .yar rule."""

    kind: str  # "secret" | "rule" | "yara"
    ref: str  # pattern id, or rule id
    scope: str = ""  # regex source: hits count only in files whose path matches ("" = anywhere)
    severity: str = ""  # .yar meta severity override
    description: str = ""  # .yar meta description


@dataclass
class RuleSet:
    rules: dict[str, Rule] = field(default_factory=dict)
    secret_patterns: dict[str, SecretPattern] = field(default_factory=dict)
    suppressions: list[Suppression] = field(default_factory=list)
    overrides: dict[str, tuple[Severity, str]] = field(default_factory=dict)  # id -> (severity, source)
    yara_sources: list[tuple[str, str, str]] = field(default_factory=list)  # (namespace, origin, text)
    yara_scoped: list[tuple[str, str, str]] = field(default_factory=list)  # path-scoped sources
    yara_targets: dict[tuple[str, str], YaraTarget] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # every file loaded, in order

    @property
    def version(self) -> str:
        """A digest of everything loaded: the rule pack's version (cache keys, SARIF)."""
        h = hashlib.sha256()
        for ns, origin, text in self.yara_sources + self.yara_scoped:
            h.update(f"{ns}\0{origin}\0{text}\0".encode())
        for rule in self.rules.values():
            h.update(repr((rule.id, rule.severity, rule.matchers)).encode())
        h.update(repr(sorted(self.overrides.items())).encode())
        return h.hexdigest()[:16]

    def severity(self, rule_id: str, default: Severity) -> Severity:
        override = self.overrides.get(rule_id)
        return override[0] if override else default

    def suppression_for(
        self, rule_id: str, path: str, fingerprint: str, today: _dt.date | None = None
    ) -> Suppression | None:
        today = today or _dt.date.today()
        for sup in self.suppressions:
            if sup.applies(rule_id, path, fingerprint, today):
                return sup
        return None


# -- loading -------------------------------------------------------------------------------------------


def rule_dirs(extra: list[str] | tuple[str, ...] = (), *, environ: dict | None = None) -> list[Path]:
    """The built-in folder, then ``LOWERDIR_RULES_DIRS``, then ``extra`` (``--rules``)."""
    env = (environ if environ is not None else os.environ).get(ENV_DIRS, "")
    dirs = [BUILTIN_DIR]
    for raw in [*(d for d in env.split(os.pathsep) if d.strip()), *extra]:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise RuleError(f"rule folder {raw}: not a directory")
        dirs.append(path)
    return dirs


_CACHE: dict[tuple, RuleSet] = {}


def load_ruleset(
    extra_dirs: list[str] | tuple[str, ...] = (), *, builtin: bool = True, environ: dict | None = None
) -> RuleSet:
    """Load every rule folder (cached while no file changed)."""
    dirs = rule_dirs(extra_dirs, environ=environ)
    if not builtin:
        dirs = dirs[1:]
    files = _rule_files(dirs)
    key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    loader = _RuleLoader()
    for path in files:
        loader.load_file(path, builtin=builtin and path.parent == BUILTIN_DIR)
    ruleset = loader.finish()
    _CACHE.clear()
    _CACHE[key] = ruleset
    return ruleset


def _rule_files(dirs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        for path in sorted(d.iterdir()):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".yar"):
                files.append(path)
    return files


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _RuleLoader:
    def __init__(self) -> None:
        self.rs = RuleSet()
        self.yar_lines: dict[tuple[str, str], str] = {}
        self.checks: list[tuple[str, str, int]] = []  # generated YARA text, file, line
        self.yar_files: list[tuple[str, str, str]] = []  # namespace, file, text
        self.n_generated = 0

    # errors
    def fail(self, where: str, line: int, message: str) -> RuleError:
        return RuleError(f"{where}:{line}: {message}")

    def load_file(self, path: Path, *, builtin: bool) -> None:
        where = _display(path)
        self.rs.files.append(where)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"{where}: cannot read the rule file: {exc}") from None
        if path.suffix == ".yar":
            self._load_yar(where, path.stem, text)
            return
        try:
            doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            raise RuleError(f"{where}:{line}: invalid YAML: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise RuleError(f"{where}: invalid YAML: {exc}") from None
        if doc is None:
            return
        if not isinstance(doc, Node):
            raise self.fail(where, 1, "a rule file is a mapping with keys " + ", ".join(TOP_KEYS))
        for key in doc:
            if key not in TOP_KEYS:
                raise self.fail(
                    where, doc.at(key), f"unknown key {key!r} (expected one of {', '.join(TOP_KEYS)})"
                )
        for item, line in self._items(doc, "secret_patterns", where):
            self._secret_pattern(item, where, line)
        for item, line in self._items(doc, "rules", where):
            self._rule(item, where, line, builtin)
        for item, line in self._items(doc, "overrides", where):
            self._override(item, where, line)
        for item, line in self._items(doc, "suppressions", where):
            self._suppression(item, where, line)

    def _items(self, doc: Node, key: str, where: str) -> list[tuple[Node, int]]:
        if key not in doc:
            return []
        seq = doc[key]
        if not isinstance(seq, Seq):
            raise self.fail(where, doc.at(key), f"{key!r} must be a list")
        out = []
        for item, line in zip(seq, seq.lines, strict=True):
            if not isinstance(item, Node):
                raise self.fail(where, line, f"each entry of {key!r} must be a mapping")
            out.append((item, line))
        return out

    # fields
    def _str(self, node: Node, key: str, where: str, *, required: bool = True, default: str = "") -> str:
        if key not in node:
            if required:
                raise self.fail(where, node.line, f"missing {key!r}")
            return default
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(where, node.at(key), f"{key!r} must be a string")
        value = str(value).strip()
        if required and not value:
            raise self.fail(where, node.at(key), f"{key!r} is empty")
        return value

    def _strs(self, node: Node, key: str, where: str) -> list[str]:
        if key not in node:
            return []
        value = node[key]
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, node.at(key), f"{key!r} must be a string or a list of strings")
        return list(value)

    def _keys(self, node: Node, allowed: tuple[str, ...], where: str, what: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.fail(
                    where,
                    node.at(key),
                    f"unknown key {key!r} in {what} (expected one of {', '.join(allowed)})",
                )

    def _severity(self, node: Node, key: str, where: str) -> Severity:
        raw = self._str(node, key, where)
        try:
            return Severity(raw.lower())
        except ValueError:
            raise self.fail(
                where, node.at(key), f"severity {raw!r} is not one of {', '.join(s.value for s in Severity)}"
            ) from None

    def _regex(self, raw: str, where: str, line: int, *, nocase: bool = False) -> re.Pattern[str]:
        try:
            return re.compile(raw, re.IGNORECASE if nocase else 0)
        except re.error as exc:
            raise self.fail(where, line, f"invalid regular expression {raw!r}: {exc}") from None

    def _globs(
        self, node: Node, key: str, where: str, *, nocase: bool = False, absolute: bool = True
    ) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
        globs = self._strs(node, key, where)
        if not globs:
            return None, ()
        for glob in globs:
            if absolute and not glob.startswith(("/", "**")):
                raise self.fail(where, node.at(key), f"path glob {glob!r} must start with '/' or '**'")
        try:
            return globs_regex(globs, nocase=nocase), tuple(globs)
        except (ValueError, re.error) as exc:
            raise self.fail(where, node.at(key), f"invalid glob: {exc}") from None

    # entries
    def _secret_pattern(self, node: Node, where: str, line: int) -> None:
        self._keys(
            node,
            ("id", "title", "regex", "nocase", "targets", "paths", "value", "placeholder"),
            where,
            "a secret pattern",
        )
        pid = self._str(node, "id", where)
        if not PATTERN_ID_RE.match(pid):
            raise self.fail(
                where, node.at("id"), f"secret pattern id {pid!r}: use lowercase letters, digits, '-'"
            )
        if pid in self.rs.secret_patterns:
            raise self.fail(
                where,
                node.at("id"),
                f"secret pattern {pid!r} is already defined in {self.rs.secret_patterns[pid].source}",
            )
        regex = self._str(node, "regex", where)
        nocase = bool(node.get("nocase", False))
        targets = self._strs(node, "targets", where) or list(SECRET_TARGETS)
        for t in targets:
            if t not in SECRET_TARGETS:
                raise self.fail(
                    where, node.at("targets"), f"target {t!r} is not one of {', '.join(SECRET_TARGETS)}"
                )
        scope, globs = self._globs(node, "paths", where)
        if scope is not None and "env" in targets and "targets" in node:
            raise self.fail(where, node.at("paths"), "a pattern limited to 'paths' cannot target 'env'")
        if scope is not None:
            targets = ["file"]
        after_raw = self._str(node, "value", where, required=False)
        after = self._regex(after_raw, where, node.at("value"), nocase=True) if after_raw else None
        if after is not None and "value" not in after.groupindex:
            raise self.fail(
                where,
                node.at("value"),
                "'value' is a regex with a group named 'value': "
                "(?P<value>...) marks the secret inside the match",
            )
        title = self._str(node, "title", where)
        ident = "secret_" + pid.replace("-", "_")
        text = _yara_rule(ident, [_yara_regex(regex, nocase)], "any")
        self._check_yara(text, where, node.at("regex"))
        placeholder_raw = self._str(node, "placeholder", where, required=False)
        placeholder = self._regex(placeholder_raw, where, node.at("placeholder")) if placeholder_raw else None
        pattern = SecretPattern(
            pid, title, regex, nocase, frozenset(targets), scope, globs, after, f"{where}:{line}", placeholder
        )
        self.rs.secret_patterns[pid] = pattern
        target = YaraTarget("secret", pid, scope.pattern if scope is not None else "")
        (self.rs.yara_scoped if scope is not None else self.rs.yara_sources).append(("secrets", where, text))
        self.rs.yara_targets[("secrets", ident)] = target

    def _rule(self, node: Node, where: str, line: int, builtin: bool) -> None:
        self._keys(node, RULE_KEYS, where, "a rule")
        rid = self._str(node, "id", where)
        if not RULE_ID_RE.match(rid):
            raise self.fail(
                where, node.at("id"), f"rule id {rid!r}: use 'area.name' (lowercase, digits, '-')"
            )
        if rid in self.rs.rules:
            raise self.fail(
                where,
                node.at("id"),
                f"rule {rid!r} is already defined in {self.rs.rules[rid].source} "
                "(to change its severity, use 'overrides')",
            )
        severity = self._severity(node, "severity", where)
        refs = self._strs(node, "references", where)
        if "match" not in node:
            raise self.fail(where, node.line, f"rule {rid}: missing 'match'")
        raw = node["match"]
        alternatives = raw if isinstance(raw, Seq) else Seq([raw])
        lines = raw.lines if isinstance(raw, Seq) else [node.at("match")]
        matchers = []
        for alt, alt_line in zip(alternatives, lines, strict=True):
            if not isinstance(alt, Node) or len(alt) != 1:
                raise self.fail(
                    where,
                    alt_line,
                    f"rule {rid}: each 'match' is a mapping with exactly one of {', '.join(MATCH_KINDS)}",
                )
            matchers.append(self._matcher(rid, alt, where))
        kinds = {m.kind for m in matchers}
        if len(matchers) > 1 and kinds & {"python", "engine", "yara"}:
            raise self.fail(
                where,
                node.at("match"),
                f"rule {rid}: python, engine and yara matches cannot be combined with others",
            )
        self.rs.rules[rid] = Rule(
            id=rid,
            severity=severity,
            title=self._str(node, "title", where),
            description=self._str(node, "description", where),
            remediation=self._str(node, "remediation", where),
            references=tuple(refs),
            matchers=tuple(matchers),
            source=f"{where}:{line}",
            builtin=builtin,
            severity_note=self._str(node, "severity_note", where, required=False),
        )

    def _matcher(self, rid: str, alt: Node, where: str) -> Matcher:
        (kind,) = alt.keys()
        spec = alt[kind]
        line = alt.at(kind)
        if kind not in MATCH_KINDS:
            raise self.fail(
                where, line, f"rule {rid}: unknown match {kind!r} (expected one of {', '.join(MATCH_KINDS)})"
            )
        if kind in ("python", "engine", "secrets"):
            if not isinstance(spec, str):
                raise self.fail(where, line, f"rule {rid}: {kind!r} takes a name")
            if kind == "python" and spec not in PYTHON_CHECKS:
                raise self.fail(
                    where,
                    line,
                    f"rule {rid}: unknown python check {spec!r} (available: {', '.join(PYTHON_CHECKS)})",
                )
            if kind == "secrets" and spec not in SECRET_TARGETS:
                raise self.fail(where, line, f"rule {rid}: secrets takes one of {', '.join(SECRET_TARGETS)}")
            return Matcher(kind, name=spec)
        if kind == "yara":
            if spec is not True:
                raise self.fail(where, line, f"rule {rid}: 'yara: true' marks the rule .yar files report to")
            return Matcher(kind)
        if not isinstance(spec, Node):
            raise self.fail(where, line, f"rule {rid}: {kind!r} takes a mapping")
        if kind == "config.user":
            self._keys(spec, ("values", "regex"), where, "config.user")
            regex = self._str(spec, "regex", where, required=False)
            values = self._strs(spec, "values", where)
            if not regex and "values" not in spec:
                raise self.fail(where, spec.line, f"rule {rid}: config.user needs 'values' or 'regex'")
            return Matcher(
                kind,
                values=frozenset(v.strip() for v in values),
                regex=self._regex(regex, where, spec.at("regex")) if regex else None,
            )
        if kind in ("config.env", "config.labels"):
            self._keys(spec, ("name", "name_not", "value", "value_not"), where, kind)
            names, _ = self._globs(spec, "name", where, nocase=True, absolute=False)
            if names is None:
                raise self.fail(where, spec.line, f"rule {rid}: {kind} needs 'name' (globs)")
            names_not, _ = self._globs(spec, "name_not", where, nocase=True, absolute=False)
            value = self._str(spec, "value", where, required=False)
            value_not = self._str(spec, "value_not", where, required=False)
            return Matcher(
                kind,
                names=names,
                names_not=names_not,
                value=self._regex(value, where, spec.at("value")) if value else None,
                value_not=self._regex(value_not, where, spec.at("value_not")) if value_not else None,
            )
        if kind == "history.created_by":
            self._keys(spec, ("regex", "unless", "nocase"), where, kind)
            nocase = bool(spec.get("nocase", False))
            pats = self._strs(spec, "regex", where)
            if not pats:
                raise self.fail(where, spec.line, f"rule {rid}: history.created_by needs 'regex'")
            return Matcher(
                kind,
                patterns=tuple(self._regex(p, where, spec.at("regex"), nocase=nocase) for p in pats),
                unless=tuple(
                    self._regex(p, where, spec.at("unless"), nocase=nocase)
                    for p in self._strs(spec, "unless", where)
                ),
            )
        # file
        self._keys(
            spec,
            ("path", "type", "mode", "flags", "size_max", "visible_only", "content", "content_condition"),
            where,
            "file",
        )
        path, globs = self._globs(spec, "path", where)
        types = self._strs(spec, "type", where)
        for t in types:
            if t not in FILE_TYPES:
                raise self.fail(
                    where, spec.at("type"), f"rule {rid}: type {t!r} is not one of {', '.join(FILE_TYPES)}"
                )
        mode_any = 0
        for bit in self._strs(spec, "mode", where):
            if bit not in MODE_BITS:
                raise self.fail(
                    where, spec.at("mode"), f"rule {rid}: mode {bit!r} is not one of {', '.join(MODE_BITS)}"
                )
            mode_any |= MODE_BITS[bit]
        flags = self._strs(spec, "flags", where)
        for flag in flags:
            if flag not in FILE_FLAGS:
                raise self.fail(
                    where,
                    spec.at("flags"),
                    f"rule {rid}: flag {flag!r} is not one of {', '.join(FILE_FLAGS)}",
                )
        size_max = spec.get("size_max")
        if size_max is not None and (
            not isinstance(size_max, int) or isinstance(size_max, bool) or size_max < 0
        ):
            raise self.fail(where, spec.at("size_max"), f"rule {rid}: size_max must be a number of bytes")
        content = ""
        if "content" in spec:
            content = self._content(rid, spec, path, where)
        elif "content_condition" in spec:
            raise self.fail(
                where, spec.at("content_condition"), f"rule {rid}: content_condition without content"
            )
        if path is None and not (types or mode_any or flags or content):
            raise self.fail(where, spec.line, f"rule {rid}: a file match needs at least one condition")
        return Matcher(
            kind,
            path=path,
            path_globs=globs,
            types=frozenset(types),
            mode_any=mode_any,
            flags_any=frozenset(flags),
            size_max=size_max,
            visible_only=bool(spec.get("visible_only")),
            content=content,
        )

    def _content(self, rid: str, spec: Node, path: re.Pattern[str] | None, where: str) -> str:
        items = spec["content"]
        if not isinstance(items, Seq) or not items:
            raise self.fail(
                where, spec.at("content"), f"rule {rid}: content is a list of {{regex|text: ...}}"
            )
        strings = []
        for item, line in zip(items, items.lines, strict=True):
            if not isinstance(item, Node):
                raise self.fail(where, line, f"rule {rid}: each content pattern is a mapping")
            self._keys(item, ("regex", "text", "nocase"), where, "a content pattern")
            nocase = bool(item.get("nocase", False))
            if ("regex" in item) == ("text" in item):
                raise self.fail(
                    where, line, f"rule {rid}: a content pattern has exactly one of 'regex', 'text'"
                )
            if "regex" in item:
                strings.append(_yara_regex(self._str(item, "regex", where), nocase))
            else:
                text = self._str(item, "text", where)
                strings.append(_yara_text(text, nocase))
        condition = self._str(spec, "content_condition", where, required=False, default="any")
        if condition not in ("any", "all"):
            raise self.fail(
                where, spec.at("content_condition"), f"rule {rid}: content_condition is 'any' or 'all'"
            )
        self.n_generated += 1
        ident = f"rule_{self.n_generated}_" + re.sub(r"[^A-Za-z0-9_]", "_", rid)
        text = _yara_rule(ident, strings, condition)
        self._check_yara(text, where, spec.at("content"))
        (self.rs.yara_scoped if path is not None else self.rs.yara_sources).append(("content", where, text))
        self.rs.yara_targets[("content", ident)] = YaraTarget(
            "rule", rid, path.pattern if path is not None else ""
        )
        return ident

    def _check_yara(self, text: str, where: str, line: int) -> None:
        """Checked in :meth:`finish`, which compiles everything once (and each piece only on error)."""
        self.checks.append((text, where, line))

    def _load_yar(self, where: str, stem: str, text: str) -> None:
        namespace = "yar_" + re.sub(r"[^A-Za-z0-9_]", "_", stem) + f"_{len(self.rs.files)}"
        self.yar_files.append((namespace, where, text))
        # Every rule of the file reports to its meta lowerdir_rule (default malware.yara); the metadata
        # comes with each match. Read the metas now too, to validate them before any scan.
        self.rs.yara_targets[(namespace, "*")] = YaraTarget("yara", "malware.yara")
        code = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        code = re.sub(r"//[^\n]*", "", code)
        rule_re = re.compile(
            r"^[ \t]*(?:(?:private|global)[ \t]+)*rule[ \t]+([A-Za-z_][A-Za-z0-9_]*)[^{]*\{(.*?)"
            r"^[ \t]*(?:strings|condition)[ \t]*:",
            re.S | re.M,
        )
        for match in rule_re.finditer(code):
            ident, body = match.group(1), match.group(2)
            meta = dict(re.findall(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"', body))
            rule_id = meta.get("lowerdir_rule", "malware.yara")
            severity = meta.get("severity", "")
            line = code.count("\n", 0, match.start()) + 1
            if severity and severity not in {s.value for s in Severity}:
                raise RuleError(
                    f"{where}:{line}: rule {ident}: meta severity {severity!r} is not one of "
                    f"{', '.join(s.value for s in Severity)}"
                )
            self.rs.yara_targets[(namespace, ident)] = YaraTarget(
                "yara", rule_id, "", severity, meta.get("description", "")
            )
            self.yar_lines[(namespace, ident)] = f"{where}:{line}"

    def _override(self, node: Node, where: str, line: int) -> None:
        self._keys(node, ("id", "severity", "reason"), where, "an override")
        rid = self._str(node, "id", where)
        self._str(node, "reason", where)
        self.rs.overrides[rid] = (self._severity(node, "severity", where), f"{where}:{line}")

    def _suppression(self, node: Node, where: str, line: int) -> None:
        self._keys(node, ("rule", "path", "fingerprint", "reason", "by", "expires"), where, "a suppression")
        rule = self._str(node, "rule", where, required=False)
        fingerprint = self._str(node, "fingerprint", where, required=False).lower()
        if not rule and not fingerprint:
            raise self.fail(where, line, "a suppression names a 'rule' or a 'fingerprint'")
        if fingerprint and not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            raise self.fail(where, node.at("fingerprint"), "fingerprint must be 64 hex digits")
        path_glob = self._str(node, "path", where, required=False)
        path = None
        if path_glob:
            path, _ = self._globs(node, "path", where)
        expires = node.get("expires")
        if expires is not None:
            if isinstance(expires, str):
                try:
                    expires = _dt.date.fromisoformat(expires)
                except ValueError:
                    raise self.fail(
                        where, node.at("expires"), "expires must be a date (YYYY-MM-DD)"
                    ) from None
            if not isinstance(expires, _dt.date):
                raise self.fail(where, node.at("expires"), "expires must be a date (YYYY-MM-DD)")
        self.rs.suppressions.append(
            Suppression(
                rule=rule,
                path=path,
                path_glob=path_glob,
                fingerprint=fingerprint,
                reason=self._str(node, "reason", where),
                by=self._str(node, "by", where),
                expires=expires,
                source=f"{where}:{line}",
            )
        )

    def _compile_all(self) -> None:
        """Compile the whole pack once: it validates every pattern and, kept in the per-process cache,
        it is what this process scans with. Only when it fails is each piece compiled alone, to name the
        file and line at fault."""
        import yara_x

        from .content import plan_for, prime

        plan = plan_for(self.rs)
        try:
            general = _build(plan.general)
            scoped = _build(plan.scoped) if plan.scoped else None
        except yara_x.CompileError:
            pass
        else:
            prime(plan, general, scoped)
            return
        for namespace, where, text in self.yar_files:
            try:
                _build(((namespace, where, text),))
            except yara_x.CompileError as exc:
                lines = str(exc).splitlines()
                first = " ".join(lines[0].split()) if lines else str(exc)
                loc = next((m for m in (re.search(r"-->\s*\S*?:(\d+):(\d+)", ln) for ln in lines) if m), None)
                line = int(loc.group(1)) if loc else 0
                label = next((" ".join(ln.strip(" |^").split()) for ln in lines if "^" in ln), "")
                raise RuleError(
                    f"{where}:{line}: invalid YARA-X rule: {first}" + (f" ({label})" if label else "")
                ) from None
        for text, where, line in self.checks:
            try:
                yara_x.compile(text)
            except yara_x.CompileError as exc:
                lines = str(exc).splitlines()
                message = " ".join(lines[0].split()) if lines else str(exc)
                label = next((" ".join(ln.strip(" |^").split()) for ln in lines if "^" in ln), "")
                raise self.fail(
                    where, line, f"invalid content pattern: {message}" + (f" ({label})" if label else "")
                ) from None
        raise RuleError("the rule pack does not compile with YARA-X (conflicting rule names?)")

    def finish(self) -> RuleSet:
        rs = self.rs
        rs.yara_sources.extend(self.yar_files)
        for rid, (_, source) in rs.overrides.items():
            if rid not in rs.rules:
                raise RuleError(f"{source}: override of unknown rule {rid!r}")
        for sup in rs.suppressions:
            if sup.rule and sup.rule not in rs.rules:
                raise RuleError(f"{sup.source}: suppression of unknown rule {sup.rule!r}")
        for key, target in rs.yara_targets.items():
            if target.kind == "yara" and target.ref not in rs.rules:
                raise RuleError(
                    f"{self.yar_lines.get(key, key[0])}: YARA rule {key[1]}: meta lowerdir_rule "
                    f"{target.ref!r} is not a known rule id"
                )
        self._compile_all()
        return rs


def _build(sources: tuple[tuple[str, str, str], ...]):
    import yara_x

    compiler = yara_x.Compiler()
    for namespace, origin, text in sources:
        compiler.new_namespace(namespace)
        compiler.add_source(text, origin=origin)
    return compiler.build()


def _yara_regex(regex: str, nocase: bool) -> str:
    body = regex.replace("/", r"\/") if "\\/" not in regex else regex
    return f"/{body}/" + (" nocase" if nocase else "")


def _yara_text(text: str, nocase: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"' + (" nocase" if nocase else "")


def _yara_rule(ident: str, strings: list[str], condition: str) -> str:
    body = "\n".join(f"    $p{i} = {s}" for i, s in enumerate(strings))
    return f"rule {ident} {{\n  strings:\n{body}\n  condition:\n    {condition} of them\n}}\n"
