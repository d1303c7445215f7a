"""Benchmark datasets by name: MGSM in eleven languages and GSM8K's test split (shipped in the
package with their licences, marco_cli/data/README.md), the seeded arithmetic generator
(`arith:N[:SEED]`), a file on the Hugging Face Hub (`hf:datasets/OWNER/REPO/FILE.jsonl`, through
the same huggingface-hub code and cache as model pulls), or any local TSV/JSONL file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from marco_cli.errors import MarcoError, clip
from marco_cli.files import user_path
from marco_cli.runs.arith import generate
from marco_cli.runs.bench import Problem, load_dataset

MGSM_LANGUAGES = {
    "bn": "Bengali",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "ja": "Japanese",
    "ru": "Russian",
    "sw": "Swahili",
    "te": "Telugu",
    "th": "Thai",
    "zh": "Chinese",
}
MGSM = "MGSM (Shi et al. 2022, arXiv 2210.03057), google-research/url-nlp"
GSM8K = "GSM8K test split (Cobbe et al. 2021, arXiv 2110.14168), openai/grade-school-math"
_HUB_PART = re.compile(r"[\w.-]{1,96}")  # a Hub owner, repository or path part
_ARITH = re.compile(r"^arith:([^:]*)(?::(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Dataset:
    """One named dataset: what `marco datasets` lists."""

    name: str
    resource: str  # under marco_cli/data ("" for a generator)
    size: int
    languages: str
    licence: str
    source: str


CATALOGUE = [
    *(
        Dataset(f"mgsm-{c}", f"mgsm/mgsm_{c}.tsv", 250, lang, "CC BY 4.0", MGSM)
        for c, lang in MGSM_LANGUAGES.items()
    ),
    Dataset("gsm8k", "gsm8k/test.jsonl", 1319, "English", "MIT", GSM8K),
    Dataset("arith:N[:SEED]", "", 0, "English", "generated", "marco's seeded generator (default seed 11)"),
]
BY_NAME = {d.name: d for d in CATALOGUE if d.resource}


def _shipped(dataset: Dataset) -> Path:
    return Path(str(resources.files("marco_cli").joinpath(f"data/{dataset.resource}")))


@dataclass(frozen=True)
class Loaded:
    """A dataset's problems and the name a results folder and table call it by."""

    label: str
    problems: list[Problem]


def _arith(spec: str) -> Loaded:
    found = _ARITH.match(spec)
    if found is None:
        raise MarcoError(f"'{clip(spec)}' is not like arith:N[:SEED]", code=2)
    if not re.fullmatch(r"\d{1,6}", found[1]) or int(found[1]) < 1:
        raise MarcoError(f"'{clip(spec)}': N is a whole number from 1 to 999999", code=2)
    if found[2] is not None and not re.fullmatch(r"\d{1,12}", found[2]):
        raise MarcoError(f"'{clip(spec)}': SEED is a whole number from 0 to 999999999999", code=2)
    count, seed = int(found[1]), int(found[2] or 11)
    problems = [
        Problem(i, question, str(answer)) for i, (question, answer) in enumerate(generate(count, seed))
    ]
    return Loaded(f"arith:{count}:{seed}", problems)


def _hub(spec: str) -> Loaded:
    """`hf:datasets/OWNER/REPO/FILE` through huggingface-hub (cache, resume, one-line errors)."""
    from marco_cli.store import download

    parts = spec.removeprefix("hf:datasets/").split("/", 2)
    if len(parts) != 3 or not all(parts) or not parts[2].endswith((".jsonl", ".tsv", ".json")):
        raise MarcoError(f"'{clip(spec)}' is not like hf:datasets/OWNER/REPO/FILE.jsonl", code=2)
    segments = [parts[0], parts[1], *parts[2].split("/")]
    bad = next((s for s in segments if s in (".", "..") or not _HUB_PART.fullmatch(s)), None)
    if bad is not None:
        raise MarcoError(
            f"'{clip(spec)}': '{clip(bad, 40)}' is not a name the Hub allows (letters, digits, - _ . only; "
            "no . or .. parts)",
            code=2,
        )
    path = download.dataset_file(f"{parts[0]}/{parts[1]}", parts[2])
    return Loaded(spec, load_dataset(path))


def load(spec: str) -> Loaded:
    """A dataset by name, generator, Hub file or path. A file on disk is read as today; a name
    is looked up only when no such file exists (a folder named `gsm8k` does not shadow it)."""
    path = user_path(spec, "the dataset")
    if path.is_file():
        return Loaded(str(path), load_dataset(path))
    if spec in BY_NAME:
        return Loaded(spec, load_dataset(_shipped(BY_NAME[spec])))
    if spec.startswith("arith:"):
        return _arith(spec)
    if spec.startswith("hf:datasets/"):
        return _hub(spec)
    if spec.endswith((".tsv", ".jsonl", ".json")) or "/" in spec:
        return Loaded(str(path), load_dataset(path))  # its own "not found" line
    names = ", ".join([*BY_NAME, "arith:N[:SEED]"])
    raise MarcoError(
        f"no dataset or file '{clip(spec)}' (datasets: {names}; `marco datasets` lists them)", code=2
    )


def folder_name(label: str) -> str:
    """A results folder's name for a dataset: its file's stem, or its name made path-safe."""
    stem = Path(label).stem if label.endswith((".tsv", ".jsonl", ".json")) else label
    return re.sub(r"[^\w.-]+", "-", stem).strip("-") or "dataset"
