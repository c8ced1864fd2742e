"""The one exception type that reaches the user as a single line."""


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, busy target): one line, exit 2."""
