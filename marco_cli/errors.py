"""The one error type the CLI turns into a clean one-line message and an exit code."""


class MarcoError(Exception):
    """A user-facing failure: the message is printed as one line, the process exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
