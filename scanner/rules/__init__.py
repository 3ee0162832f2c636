"""The built-in rule pack: data, not code (YAML rules, secret patterns, YARA-X rules). See docs/rules.md."""
