"""The `spool` command line: the dev supervisor, the server roles, client commands, the bench.

A tool, not a side of the wire: it may import `spool.api`, `spool.worker` and `spool_client`.
"""
