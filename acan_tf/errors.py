"""UserError: the one base class of every error a user can fix; each command prints it as one line, no traceback."""


class UserError(Exception):
    """Bad input or state the user can fix (a flag, a file, a folder); the message names it and says what to do."""
