"""The one error type the CLI turns into a clean one-line message and an exit code."""


def one_line(message: str) -> str:
    """A message kept to one line: a line break inside it (from a name or value it quotes) is
    written as `\\n`, as Python's repr writes it."""
    return message.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


class MarcoError(Exception):
    """A user-facing failure: the message is printed as one line, the process exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(one_line(message))
        self.code = code


class UsageError(MarcoError):
    """The input itself is wrong (the prompt, an option): exit 2 on the command line, HTTP 400
    from `marco serve`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=2)


class PromptTooLong(UsageError):
    """The prompt does not fit the context (HTTP 400 with OpenAI's `context_length_exceeded`)."""


def clip(text: str, limit: int = 80) -> str:
    """A user's text as a message quotes it: one line, at most `limit` characters (a name of
    300 characters would turn a one-line error into a screenful)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
