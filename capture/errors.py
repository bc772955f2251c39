"""The error a source raises for input it cannot use: the user's mistake, not a bug."""


class SourceError(Exception):
    """A source spec, file, device or URL that cannot be opened or read.

    The message says what is wrong and what to do, in one line: the command
    line prints it and exits with code 2 instead of showing a traceback.
    """
