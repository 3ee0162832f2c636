"""The forensic rule pack: rules as data (YAML, YARA-X) run during the single pass and on the merged tree.

    from scanner.engine.rules import load_ruleset
    ruleset = load_ruleset(["/etc/lowerdir/rules"])      # built-in + LOWERDIR_RULES_DIRS + these

``scan()`` loads the rule pack itself (``ScanOptions.rules``, ``rule_dirs``). Modules:
:mod:`.loader` (files → :class:`RuleSet`, clear errors), :mod:`.content` (the per-layer content hook:
YARA-X, extra digests, captured databases), :mod:`.evaluate` (config, history, files, graveyard, package
integrity), :mod:`.packages` (dpkg, apk), :mod:`.sarif` and :mod:`.sbom` (outputs), :mod:`.catalogue`
(``docs/rules.md``).
"""

from __future__ import annotations

from .loader import BUILTIN_DIR, ENV_DIRS, Rule, RuleError, RuleSet, load_ruleset

__all__ = ["BUILTIN_DIR", "ENV_DIRS", "Rule", "RuleError", "RuleSet", "load_ruleset"]
