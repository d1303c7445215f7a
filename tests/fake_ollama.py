"""A local server speaking Ollama's API shapes, for the Ollama backend's tests (the real server
cannot be installed on these machines).

Shapes recorded from ollama/ollama at fb30760 (2026-08), `api/types.go` (GenerateRequest,
GenerateResponse, Logprob, TokenLogprob) and `server/routes.go` (`/api/version`, `/api/tags`,
`/api/generate`, `/v1/models`; top_logprobs 0-20, else 400), as Ollama 0.12.11 introduced them
(ollama/ollama#12899): `/api/generate` streams newline-delimited JSON (`application/x-ndjson`),
each object with `response` and `logprobs` (`{token, logprob, bytes, top_logprobs}`), the last
with `done: true`, `done_reason` (`stop` or `length`) and `prompt_eval_count`.

The model is scripted: it always says ANSWER, a piece per word, each piece with a known
log-probability and four alternatives, so the engine's confidences can be checked exactly.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.servers import QuietHTTPServer

ANSWER = "<Thought>\n2 + 3 = 5\n</Thought>\n<Output>\n5\n</Output>"
CHOSEN_LOGPROB = -0.2
OTHERS = (-2.0, -3.0, -4.0, -5.0)


def pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def logprob_item(token: str, top: int) -> dict[str, object]:
    alternatives = [{"token": token, "logprob": CHOSEN_LOGPROB, "bytes": list(token.encode())}]
    alternatives += [{"token": f"alt{i}", "logprob": lp, "bytes": []} for i, lp in enumerate(OTHERS)]
    return {
        "token": token,
        "logprob": CHOSEN_LOGPROB,
        "bytes": list(token.encode()),
        "top_logprobs": alternatives[:top],
    }


def expected_confidence() -> float:
    """c_i over the top 5: exp(chosen) / sum of exp(top-5), the same for every piece here."""
    return math.exp(CHOSEN_LOGPROB) / sum(math.exp(lp) for lp in (CHOSEN_LOGPROB, *OTHERS))


@dataclass
class FakeOllama:
    version: str = "0.13.1"
    models: tuple[str, ...] = ("smollm2:135m", "marco-o1:latest")
    logprobs: bool = True  # an Ollama that ignores the field (older) answers without them
    requests: list[dict[str, object]] = field(default_factory=list)

    def start(self) -> FakeOllama:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _json(self, body: object, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/version":
                    return self._json({"version": fake.version})
                if self.path == "/api/tags":
                    return self._json({"models": [{"name": m, "model": m, "size": 1} for m in fake.models]})
                if self.path == "/v1/models":
                    return self._json(
                        {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]}
                    )
                self._json({"error": "404 page not found"}, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if self.path != "/api/generate":
                    return self._json({"error": "404 page not found"}, 404)
                if body.get("model") not in fake.models:
                    return self._json({"error": f"model '{body.get('model')}' not found"}, 404)
                top = int(body.get("top_logprobs") or 0)
                if not 0 <= top <= 20:
                    return self._json({"error": "top_logprobs must be between 0 and 20"}, 400)
                events = fake.generate(body, top)
                if body.get("stream") is False:
                    merged = {**events[-1], "response": "".join(str(e.get("response", "")) for e in events)}
                    merged["logprobs"] = [lp for e in events for lp in e.get("logprobs", [])]
                    return self._json(merged)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                for event in events:
                    self.wfile.write(json.dumps(event).encode() + b"\n")

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def generate(self, body: dict[str, object], top: int) -> list[dict[str, object]]:
        """ANSWER's pieces after what the prompt already holds of it, cut by num_predict or a stop."""
        options = body.get("options") or {}
        assert isinstance(options, dict) and body.get("raw") is True
        prompt = str(body.get("prompt", ""))
        said = prompt.rsplit("<|im_start|>assistant\n", 1)[-1]
        rest = ANSWER[len(said) :] if ANSWER.startswith(said) else ANSWER
        limit, stops = int(options.get("num_predict") or 10**6), list(options.get("stop") or [])
        events, text, reason = [], "", "stop"
        for number, piece in enumerate(pieces(rest)):
            if number >= limit:
                reason = "length"
                break
            if any(s in text + piece for s in stops):
                break
            text += piece
            event: dict[str, object] = {"model": body["model"], "response": piece, "done": False}
            if self.logprobs and body.get("logprobs"):
                event["logprobs"] = [logprob_item(piece, top)]
            events.append(event)
        events.append(
            {
                "model": body["model"],
                "response": "",
                "done": True,
                "done_reason": reason,
                "prompt_eval_count": 42,
                "eval_count": len(events),
            }
        )
        return events

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
