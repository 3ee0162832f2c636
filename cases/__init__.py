"""Cases: membership and roles, evidence and its chain of custody, the audit log, web views and the API."""
