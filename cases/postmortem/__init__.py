"""The post-mortem export: the CISO's PDF (WeasyPrint), Markdown and JSON, from one context.

    context.build(case, ...)      every fact the document states, read once (secrets redacted here)
    render.html / render.pdf      the HTML template (browser preview and PDF source), then WeasyPrint
    markdown.render               the same sections as Markdown
    render.json_bytes             the same context as a JSON document (schema ``lowerdir.postmortem/v1``)
    fetcher.StaticOnlyFetcher     WeasyPrint's only way out: our bundled stylesheet, nothing else
    exports                       ExportRecord bookkeeping: inline or in a Celery task, custody, audit

See docs/postmortem.md.
"""
