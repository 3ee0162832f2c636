"""The case workspace: the tabs of a case page (overview, evidence, image, findings, timeline, notes,
checklists, audit) and the queries, charts and rendering behind them."""
