"""The content-addressed blob store: ingest to a temp file, verify size and digest, rename into place."""
