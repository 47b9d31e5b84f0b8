"""Log-probabilities of completions under a model, through transformers (torch imported here, lazily).

``Scorer.load(weights)`` loads a Hugging Face folder or dequantises a GGUF file (float32, CPU). ``logprob(prompt,
completion)`` is the summed log-probability of the completion's tokens after the prompt, and their count. The prompt
is tokenised the way TRL's DPO trainer does for the row's shape: a list of chat messages goes through the tokenizer's
chat template (generation prompt added), a plain string is used as it is; the completion gets the EOS token, as TRL
appends it to chosen and rejected.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvalError

if TYPE_CHECKING:
    import torch
    from transformers import Cache, PreTrainedModel

Prompt = str | list[dict[str, str]]
MAX_SCORED_TOKENS = 1024  # longer sequences are cut from the left of the prompt (the completion is always scored whole)
MIN_SHARED = 32  # a shared prompt prefix shorter than this is recomputed (not worth the cache bookkeeping)


def completion_text(completion: object) -> str:
    """A row's chosen/rejected as text: a string, or the content of a list of assistant messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    raise EvalError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def prompt_of(prompt: object) -> Prompt:
    """A row's prompt as the scorer takes it: a string, or a list of chat messages (each a dict of strings)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return [{str(k): str(v) for k, v in m.items()} for m in prompt]
    raise EvalError(f"a prompt must be a string or a list of messages, got {type(prompt).__name__}")


class Scorer:
    """A causal LM and its tokenizer, for log-probabilities. Thread-safe (one forward at a time)."""

    # the tokenizer stays Any: its call and chat template return unions (str, ids, BatchEncoding) narrowed at run time
    def __init__(self, model: PreTrainedModel, tokenizer: Any, *, name: str = "model"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self._lock = threading.Lock()
        self._cache: Cache | None = None  # the KV cache of the last forced-choice prompt, and its token ids
        self._cache_ids: list[int] = []

    @classmethod
    def load(cls, weights: tuple[Path, str | None], *, name: str = "model") -> Scorer:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        folder, gguf_file = weights
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the eval's own progress line is the one the user reads
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EvalError(f"cannot load the weights of {name} from {folder / (gguf_file or '')}: {first}") from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        model.eval()
        return cls(model, tokenizer, name=name)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, list):
            ids = self.tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # a BatchEncoding in some versions
                ids = ids["input_ids"]
            return [int(i) for i in ids]
        return [int(i) for i in self.tokenizer(prompt, add_special_tokens=False)["input_ids"]]

    def completion_ids(self, completion: str, *, eos: bool = True) -> list[int]:
        ids = [int(i) for i in self.tokenizer(completion, add_special_tokens=False)["input_ids"]]
        if eos and self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        return ids

    def _forward_logprobs(self, ids: list[int]) -> torch.Tensor:
        import torch

        with self._lock, torch.inference_mode():
            logits = self.model(torch.tensor([ids])).logits[0].float()
        return torch.log_softmax(logits, dim=-1)

    def logprob(self, prompt: Prompt, completion: str, *, eos: bool = True) -> tuple[float, int]:
        """Summed log-probability of ``completion``'s tokens after ``prompt``, and the number of those tokens."""
        prompt_ids = self.prompt_ids(prompt)
        target = self.completion_ids(completion, eos=eos)
        if not target:
            return 0.0, 0
        keep = max(1, MAX_SCORED_TOKENS - len(target))
        prompt_ids = prompt_ids[-keep:] if prompt_ids else [int(self.tokenizer.eos_token_id or 0)]
        logprobs = self._forward_logprobs(prompt_ids + target)
        start = len(prompt_ids)
        total = sum(float(logprobs[start - 1 + i, tok]) for i, tok in enumerate(target))
        return total, len(target)

    def _next_token_logprobs(self, ids: list[int]) -> torch.Tensor:
        """Log-probabilities of the token after ``ids``. The tokens shared with the previous call's prompt (a suite's
        fixed instruction, hundreds of tokens) are not recomputed: the KV cache is cut back to them and reused."""
        import torch

        with self._lock, torch.inference_mode():
            shared = 0
            for a, b in zip(self._cache_ids, ids, strict=False):
                if a != b:
                    break
                shared += 1
            shared = min(shared, len(ids) - 1)
            cache = None
            if self._cache is not None and shared >= MIN_SHARED and hasattr(self._cache, "crop"):
                extra = self._cache.get_seq_length() - shared
                if extra > 0:
                    self._cache.crop(-extra)  # transformers 5: a negative count drops that many trailing tokens
                cache = self._cache
            else:
                shared = 0
            out = self.model(torch.tensor([ids[shared:]]), cache=cache, use_cache=True)  # transformers 5: `cache`
            self._cache, self._cache_ids = out.cache, list(ids)
            return torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def choice_logprobs(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        """The log-probability of each choice as the reply to ``prompt`` (forced choice). Choices of one token each
        are scored from one forward pass of the prompt (its shared prefix with the last prompt taken from cache)."""
        prompt_ids = self.prompt_ids(prompt)[-MAX_SCORED_TOKENS:]
        firsts = [self.completion_ids(c, eos=False) for c in choices]
        if all(len(ids) == 1 for ids in firsts):
            logprobs = self._next_token_logprobs(prompt_ids)
            return [float(logprobs[ids[0]]) for ids in firsts]
        return [self.logprob(prompt, c, eos=False)[0] for c in choices]

    def vocabulary_digest(self) -> str:
        """A digest of the tokenizer's vocabulary: equal digests mean token ids mean the same strings."""
        import hashlib

        vocab = sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        return hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]


def check_same_tokenizer(model: Scorer, base: Scorer) -> None:
    """EvalError when M and M0 tokenise differently: their log-probabilities of the same text are not comparable."""
    if model.vocabulary_digest() != base.vocabulary_digest():
        raise EvalError(
            f"{model.name} and its base {base.name} have different tokenizers (vocabularies differ: "
            f"{len(model.tokenizer.get_vocab()):,} vs {len(base.tokenizer.get_vocab()):,} tokens); implicit rewards "
            "compare log-probabilities of the same tokens, so evaluate a model against the base it was trained from"
        )
