"""Export rows as the rows TRL's trainers read, one rule for every trainer (``hegelion train``, examples/train_*.py).

- Plain-text prompts end with one newline: TRL joins ``prompt + completion`` as they are, so the trained text is the
  prompt, a newline, the answer (the axolotl configs write ``"{prompt}\\n"`` too). Message lists are left to the
  model's chat template.
- SFT rows become prompt/completion pairs, so the loss is on the answer (the synthesis) only: a conversation's last
  (assistant) message is the completion; Alpaca rows get the Alpaca prompt, exactly as axolotl's ``alpaca`` type
  renders it; preference rows trained with SFT teach their ``chosen`` side.
"""

from __future__ import annotations

from ..errors import TrainError
from ..types import JSONObject

# The Alpaca prompt, exactly as axolotl's `alpaca` type (and the Stanford Alpaca recipe) renders it.
ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def separate_prompt(row: JSONObject) -> JSONObject:
    """``row`` with a plain-text prompt ending in one newline (a conversational row as it is)."""
    prompt = row["prompt"]
    return {**row, "prompt": prompt + "\n"} if isinstance(prompt, str) else row


def alpaca_prompt_completion(row: JSONObject) -> JSONObject:
    """An Alpaca row as the Alpaca prompt and its response."""
    template = ALPACA_PROMPT if row["input"] else ALPACA_PROMPT_NO_INPUT
    return {"prompt": template.format(instruction=row["instruction"], input=row["input"]), "completion": row["output"]}


def chat_prompt_completion(row: JSONObject) -> JSONObject:
    """A conversation as the turns before the answer and the answer (the last, assistant, message)."""
    messages = row["messages"]
    if not isinstance(messages, list):
        raise TrainError(f"a conversation must be a list of messages; got {messages!r}")
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        raise TrainError(f"a conversation must end with the assistant's answer; got {messages[-1:]!r}")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def dpo_row(row: JSONObject) -> JSONObject:
    """A preference row as DPOTrainer reads it (prompt, chosen, rejected only)."""
    return separate_prompt({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]})


def sft_row(row: JSONObject, shape: str) -> JSONObject:
    """A row of any export shape as SFTTrainer's prompt/completion pair."""
    if shape == "sft-chat":
        return chat_prompt_completion(row)
    if shape == "instruction":
        return alpaca_prompt_completion(row)
    if shape in ("dpo", "dpo-chat"):
        return separate_prompt({"prompt": row["prompt"], "completion": row["chosen"]})
    return separate_prompt({"prompt": row["prompt"], "completion": row["completion"]})


def trainer_rows(rows: list[JSONObject], shape: str, method: str) -> list[JSONObject]:
    """``rows`` (of one export ``shape``) as the trainer of ``method`` reads them."""
    if method == "dpo":
        return [dpo_row(row) for row in rows]
    return [sft_row(row, shape) for row in rows]
