"""Errors that reach the user as one line, never as a traceback."""


class CadenzaError(Exception):
    """A usage or data error shown to the user as one line (exit code 2)."""
