"""Errors that the CLI reports as a one-line message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, a bad option.

    The message names the bad value and says what to do about it. The CLI
    prints it as `error: <message>` and exits with status 2.
    """
