"""The one exception type npgen raises for problems the user can fix."""


class NpgenError(Exception):
    """A user-facing error: its message is one line that says what is wrong and what to do.

    The CLI prints it as ``error: <message>`` and exits with status 2, without a traceback.
    """
