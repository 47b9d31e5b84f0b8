"""``evaluate``: run suites on a model M (and its base M0), append each item's result as it finishes, and write the
report. Everything that can be refused is checked before the output folder is touched: unknown suites, models,
missing data, tokenizers that differ, a GGUF llama.cpp cannot load, an output folder holding another evaluation."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import EvalError
from .context import EvalContext
from .heldout import training_prompts
from .metrics import Summary
from .models import resolve_eval_model
from .results import Item, ItemLog, check_out, setup_of, write_whole

if TYPE_CHECKING:
    from .report import Report

OnProgress = Callable[[str, int, int], None]  # (suite, items done, items in the suite)


def suite_modules() -> dict[str, ModuleType]:
    from . import halueval, mtbench, preference, selfcorrect

    return {
        preference.PREFERENCE: preference,
        halueval.HALUEVAL: halueval,
        selfcorrect.SELFCORRECT: selfcorrect,
        mtbench.MTBENCH: mtbench,
    }


def parse_suites(suites: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (suites.split(",") if isinstance(suites, str) else suites) if s.strip()]
    known = suite_modules()
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        raise EvalError(f"unknown suite {(unknown or [''])[0]!r}; the suites are {', '.join(known)} (comma-separated)")
    return list(dict.fromkeys(names))


def default_out(model_spec: str, out: str | Path | None) -> Path:
    """``out``, or the ``hegelion train`` folder itself (the report beside its model card)."""
    if out is not None:
        return Path(out)
    model = resolve_eval_model(model_spec)
    if model.train_folder is None:
        raise EvalError("give --out DIR for the report (only a hegelion train folder has a default: the folder itself)")
    return model.train_folder


def evaluate(
    model: str,
    *,
    suites: str | Sequence[str],
    out: str | Path | None = None,
    base: str | None = None,
    data: str | Path | None = None,
    n: int | None = None,
    seed: int = 0,
    judge_model: str | None = None,
    api_base: str | None = None,
    max_tokens: int | None = None,
    concurrency: int = 4,
    on_progress: OnProgress | None = None,
) -> Report:
    """Evaluate ``model`` (against ``base``) on ``suites``; returns the report (also written to ``out``)."""
    names = parse_suites(suites)
    if n is not None and n < 1:
        raise EvalError(f"--n must be at least 1, got {n}")
    ctx = EvalContext(
        model=resolve_eval_model(model),
        base=resolve_eval_model(base) if base else None,
        n=n,
        seed=seed,
        data=Path(data) if data is not None else None,
        judge_model=judge_model,
        api_base=api_base,
        max_tokens=max_tokens,
        concurrency=concurrency,
    )
    if ctx.data is not None and not ctx.data.exists():
        raise EvalError(f"--data {str(ctx.data)!r} does not exist; give an export folder (hegelion dataset --card)")
    folder = default_out(model, out)
    setup = setup_of(ctx.model.name, ctx.base.name if ctx.base else None, seed, ctx.data)
    check_out(folder, setup, model_folder=ctx.model.train_folder)
    ctx.trained_on = training_prompts([p for p in (ctx.data, ctx.model.training_data()) if p is not None])
    modules = suite_modules()
    planned = {name: modules[name].items(ctx) for name in names}
    log = ItemLog(folder)  # reads what a previous run finished; writes nothing yet
    for name in names:
        if any((name, item["id"]) not in log.done for item in planned[name]):
            modules[name].prepare(ctx)  # loads weights and LMs: every refusal happens before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    write_whole(folder / "eval.json", _json(setup))
    summaries: dict[str, Summary] = {}
    for name in names:
        results = _run_suite(ctx, name, modules[name], planned[name], log, on_progress)
        summaries[name] = modules[name].summarise(ctx, results)
        summaries[name]["counts"]["refused (in the training data)"] = ctx.refused.get(name, 0)
    from .report import write_report

    return write_report(folder, ctx, summaries)


def _run_suite(
    ctx: EvalContext,
    name: str,
    module: ModuleType,
    items: Sequence[Item],
    log: ItemLog,
    on_progress: OnProgress | None,
) -> list[Mapping[str, object]]:
    todo = [item for item in items if (name, item["id"]) not in log.done]
    done = len(items) - len(todo)
    if on_progress:
        on_progress(name, done, len(items))
    workers = max(1, min(ctx.concurrency, getattr(module, "MAX_WORKERS", ctx.concurrency)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(module.run_item, ctx, item): item for item in todo}
        try:
            for future in concurrent.futures.as_completed(futures):
                log.append(name, futures[future]["id"], future.result())
                done += 1
                if on_progress:
                    on_progress(name, done, len(items))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [log.done[(name, item["id"])] for item in items]


def _json(data: object) -> str:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
