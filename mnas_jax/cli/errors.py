"""Errors the CLI reports as one line (exit 2) instead of a traceback."""


class UserError(Exception):
    """A mistake by the user: the message names the bad value and says what to do."""
