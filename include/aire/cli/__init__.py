"""The ``aire`` command line, one module per area of commands.
"""

from aire.cli.main import main

__all__ = ["main"]
