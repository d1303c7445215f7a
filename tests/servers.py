"""Starting and waiting for a server process on loopback (llama-server, llama-cpp-python's)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], url: str, ready: str) -> subprocess.Popen[bytes]:
    """Start `args` and wait until GET url+ready answers 200; kill it if it never does."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
