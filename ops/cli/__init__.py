"""The groups of `python manage.py strata` subcommands, one module a group.

Each module's `register(subparsers)` adds its subcommands, each run by a handler
that parses nothing more, calls one service or selector and prints the result.
"""
