"""`python -m trainspec` runs the CLI."""

from trainspec._cli import main

main()
