"""`python -m opbench` -> the CLI."""

from opbench.cli import main

raise SystemExit(main())
