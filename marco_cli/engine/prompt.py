"""System prompts and chat-template rendering (the GGUF's own Jinja template, sandboxed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # llama_cpp (and numpy under it) loads only when a prompt is rendered
    from llama_cpp.llama_types import ChatCompletionRequestMessage

# The system prompt baked into Marco-o1's chat template (used when the GGUF lacks a template).
MARCO_SYSTEM_PROMPT = (
    "\n你是一个经过良好训练的AI助手，你的名字是Marco-o1.由阿里国际数字商业集团的AI Business创造.\n"
    "        \n## 重要！！！！！\n"
    "当你回答问题时，你的思考应该在<Thought>内完成，<Output>内输出你的结果。\n"
    "<Thought>应该尽可能是英文，但是有2个特例，一个是对原文中的引用，另一个是是数学应该使用markdown格式，"
    "<Output>内的输出需要遵循用户输入的语言。\n        "
)

PLAIN_SYSTEM_PROMPT = (
    "You are a careful assistant. Think step by step inside <Thought>...</Thought>, "
    "then give the final answer inside <Output>...</Output>, in the user's language."
)

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def with_system_prompt(
    messages: Sequence[dict[str, str]], style: str, template: str | None
) -> list[dict[str, str]]:
    """Add the style's system prompt unless the conversation already has one.

    Style `bare` adds none (a process reward model reads exactly the conversation it was
    trained on). A `marco` model whose own template carries Marco-o1's system prompt gets none added: the
    template inserts it, exactly as the model was trained.
    """
    out = [dict(m) for m in messages]
    if style == "bare" or (out and out[0]["role"] == "system"):
        return out
    if style == "marco":
        if template and "Marco-o1" in template:
            return out
        return [{"role": "system", "content": MARCO_SYSTEM_PROMPT}, *out]
    return [{"role": "system", "content": PLAIN_SYSTEM_PROMPT}, *out]


def render_chat(messages: Sequence[dict[str, str]], template: str | None, bos: str, eos: str) -> str:
    """Render with the model's template (ChatML when the GGUF has none), generation prompt on."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template or CHATML_TEMPLATE, eos_token=eos, bos_token=bos)
    # llama-cpp-python types each message as a TypedDict per role; ours are {role, content}
    typed = cast("list[ChatCompletionRequestMessage]", list(messages))
    return formatter(messages=typed).prompt
