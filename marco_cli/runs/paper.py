"""The Marco-o1 paper's MGSM figures (arXiv 2411.14405, Table 2), to print beside a bench's own
rows when the model is Marco-o1 and the dataset is MGSM-En or MGSM-Zh: the configuration each
figure belongs to is named as `marco bench` names it (`cot`, `mcts/step`, `mcts/mini-64`,
`mcts/mini-32`). Qwen2-7B-Instruct's figures are the base model's, said in a note (not a row)."""

from __future__ import annotations

from dataclasses import replace

from marco_cli.record.results import Summary

PAPER = "Marco-o1 paper, Table 2 (arXiv 2411.14405)"
MARCO_O1 = "marco-o1"
FIGURES: dict[str, dict[str, float]] = {  # dataset -> configuration -> accuracy (%)
    "mgsm-en": {"cot": 85.60, "mcts/step": 90.40, "mcts/mini-64": 88.80, "mcts/mini-32": 87.60},
    "mgsm-zh": {"cot": 71.20, "mcts/step": 80.00, "mcts/mini-64": 81.60, "mcts/mini-32": 82.40},
}
BASE_MODEL = {"mgsm-en": 84.23, "mgsm-zh": 76.80}  # Qwen2-7B-Instruct, the model Marco-o1 tunes


def is_marco_o1(model: str) -> bool:
    """A registry label `marco-o1:QUANT` (or the entry's name alone)."""
    return model.split(":", 1)[0].lower() == MARCO_O1


def figure(dataset: str, model: str, config: str) -> float | None:
    """The paper's accuracy for this configuration (a fraction), or None: another model, another
    dataset, or a configuration the paper did not run."""
    if not is_marco_o1(model):
        return None
    value = FIGURES.get(dataset, {}).get(config)
    return None if value is None else value / 100


def note(dataset: str, model: str) -> str | None:
    """One line under the table: where the paper's column comes from, or why there is none."""
    if dataset not in FIGURES:
        return None
    if not is_marco_o1(model):
        return f"the paper's {dataset} figures are Marco-o1's; {model} has none to compare with"
    base = BASE_MODEL[dataset]
    return f"paper: {PAPER}; its base model, Qwen2-7B-Instruct, scored {base:.2f}% (not run here)"


def with_paper(summary: Summary) -> Summary:
    """The summary with the paper's figure on each configuration it ran, and the note."""
    configs = {
        name: replace(row, paper=figure(summary.dataset, summary.model, name))
        for name, row in summary.configs.items()
    }
    return replace(summary, configs=configs, paper_note=note(summary.dataset, summary.model))
