"""What a server's answers and addresses look like on the wire, apart from any engine: an
error body as one short line, and credentials taken out of a URL (sent, never printed)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import unquote, urlsplit, urlunsplit


def one_line(body: str) -> str:
    """A server's error body as one short line: JSON's message, else text without HTML tags."""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        body = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, AttributeError, RecursionError):
        pass
    text = " ".join(re.sub(r"<[^<>]*>", " ", body).split())
    return text if len(text) <= 160 else text[:159] + "…"


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without `user:pass@` (what messages and records show), and those credentials
    as an HTTP Basic token (they are sent, never printed)."""
    parsed = urlsplit(url)
    if parsed.username is None and parsed.password is None:
        return url, None
    host = parsed.netloc.rsplit("@", 1)[1]
    token = f"{unquote(parsed.username or '')}:{unquote(parsed.password or '')}"
    return urlunsplit(parsed._replace(netloc=host)), base64.b64encode(token.encode()).decode()
