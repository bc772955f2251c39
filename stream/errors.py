"""The one exception type that means "the user gave us something we cannot use"."""


class UserError(Exception):
    """A mistake or an unusable input on the user's side.

    The command line prints its message as one line and exits with code 2 instead
    of showing a traceback, so messages must say what is wrong and what to do.
    """
