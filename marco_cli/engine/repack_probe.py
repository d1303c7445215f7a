"""The repacking probe's child program (`python -m marco_cli.engine.repack_probe MODEL`): load
the model with repacking and decode a short batch. repack.py runs it in a child process, so a
crash of llama.cpp's repacking path kills the child, not marco; kept apart from repack.py so
that llama.py and repack.py do not import each other."""

from __future__ import annotations

import os
import signal
import sys

from marco_cli.contract import Sampling, StopRule
from marco_cli.engine.llama import Engine
from marco_cli.engine.repack import CRASH_ENV


def main(model: str) -> int:
    """Load with repacking, then decode a batch of several tokens and a few more."""
    with Engine(model, ctx=256, repack=True, threads=2) as engine:
        prompt = engine.tokenize("The quick brown fox jumps over the lazy dog. One, two, three,")
        crash = os.environ.get(CRASH_ENV)
        if crash:  # test seam: die here, by a signal, as the real crash does
            os.kill(os.getpid(), signal.Signals[crash])
        engine.generate(prompt, Sampling(), StopRule(max_tokens=4, stop_texts=(), loop_guard=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
