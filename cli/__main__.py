"""`python -m spool.cli ...` is the `spool` command."""

from spool.cli.main import main

main()
