"""`python -m xrunner.cli`."""

from xrunner.cli.main import app

app()
