"""llama-cpp-python's server under the machine's repacking verdict (it has no switch for it):
`python -m tests.llama_cpp_server ARGS` runs `python -m llama_cpp.server ARGS`, its models loaded
with `use_extra_bufts` as MARCO_REPACK (set by conftest for the whole test run) says."""

from __future__ import annotations

import os
import runpy
import sys

from benchmarks.reference import high_level_defaults

if __name__ == "__main__":
    sys.argv[0] = "llama_cpp.server"
    with high_level_defaults(os.environ.get("MARCO_REPACK", "on") != "off"):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
