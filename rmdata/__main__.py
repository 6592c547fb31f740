"""`python -m rmdata` runs the CLI."""

from rmdata.cli import main

main()
