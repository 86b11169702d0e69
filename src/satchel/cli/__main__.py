"""``python -m satchel.cli``."""

from satchel.cli import entry

entry()
