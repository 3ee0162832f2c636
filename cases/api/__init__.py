"""The REST API (DESIGN §5): cases, evidence intake and scan status."""
