"""marco: Marco-o1-style search over local GGUF models, as a command (`marco`) and from Python.

The public Python surface is `solve` and `bench` (marco_cli/api.py; docs/api.md): everything else in the
package is marco's own and may change between releases."""

from marco_cli.api import bench, solve

__all__ = ["bench", "solve"]
