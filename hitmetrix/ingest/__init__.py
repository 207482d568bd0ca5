"""Access-log ingestion (``hitmetrix ingest-log``): log lines become ``request`` and ``auth`` events sent
through the server batch route, like the SDK's, so everything enters through capture and the spool.

``parse`` reads one line (nginx / Apache combined, or JSON), ``rules`` infers sign-in outcomes per
route, ``follow`` reads a file once or follows it with a durable offset, ``sender`` posts batches.
See docs/server-sources.md.
"""
