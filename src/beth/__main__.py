"""`python -m beth` runs the command line."""

from beth.cli import main

main()
