"""marco: Marco-o1-style search over local GGUF models, as a command (`marco`) and from Python.

The public Python surface is `solve` (marco_cli/api.py; docs/api.md): everything else in the
package is marco's own and may change between releases."""

from marco_cli.api import solve

__all__ = ["solve"]
