"""axolotl and unsloth, run for real on our exports, each from a venv of its own (.ci/install-training.sh).

Every runnable recipe in examples/axolotl_dpo.yml and examples/axolotl_sft.yml (the config itself and each commented
alternative) is run as its comments say: the hegelion dataset commands they give, then `axolotl preprocess` with
`base_model` pointed at the tiny offline model. The prepared rows must have the shapes axolotl trains on and hold,
row for row, the same text and loss mask as examples/train_dpo.py / train_sft.py make TRL train on for the same file:
one file, one training format, whichever trainer reads it. The two configs then train two steps on the CPU, and
examples/unsloth_dpo.py and unsloth_sft.py train two steps on each format they read; the loss must be finite and the
adapter weights must move.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need
from training_support import (
    EXAMPLES,
    ROOT,
    TASKS,
    example,
    read_rows,
    run_hegelion_dataset,
    save_tiny_model,
    write_traces,
)

pytest.importorskip("trl", reason="needs the training stack: pip install -e '.[train]'")

pytestmark = [
    pytest.mark.slow,
    # TRL 1.x calls transformers 5's deprecated gradient-checkpointing names when it builds a trainer.
    pytest.mark.filterwarnings(r"ignore:`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated:FutureWarning"),
]

AXOLOTL_VENV = Path(os.environ.get("HEGELION_AXOLOTL_VENV", ROOT / ".ci" / "venvs" / "axolotl"))
UNSLOTH_VENV = Path(os.environ.get("HEGELION_UNSLOTH_VENV", ROOT / ".ci" / "venvs" / "unsloth"))
INSTALL = "run bash .ci/install-training.sh (or point HEGELION_AXOLOTL_VENV / HEGELION_UNSLOTH_VENV at a venv)"
IGNORED = -100  # the label of a token that carries no loss

# -- the recipes the configs document ----------------------------------------------------------------------------------

COMMAND = re.compile(r"^#\s+(hegelion dataset .+)$")
ALTERNATIVE = re.compile(r"^# \(([a-z])\) ")
YAML_START = re.compile(r"^# [a-z_]+:")


@dataclass(frozen=True)
class Recipe:
    """One runnable way to use a config: the export commands its comments give and the settings to run."""

    config: str  # e.g. "axolotl_dpo.yml"
    variant: str  # "main" or the alternative's letter
    commands: tuple[str, ...]
    settings: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.config.removeprefix('axolotl_').removesuffix('.yml')}-{self.variant}"

    @property
    def rl(self) -> bool:
        return self.settings.get("rl") == "dpo"

    def train_file(self) -> str:
        return self.settings["datasets"][0]["path"]


def recipes(config: str) -> list[Recipe]:
    """The config as shipped, then each `# (x)` alternative: its `hegelion dataset` lines, and its YAML (the commented
    block from `# datasets:` to the next bare `#`) put in place of the config's own keys."""
    text = (EXAMPLES / config).read_text(encoding="utf-8")
    settings = yaml.safe_load(text)
    lines = text.splitlines()
    header = lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))]
    found = [Recipe(config, "main", tuple(m[1] for x in header if (m := COMMAND.match(x))), settings)]
    i = 0
    while i < len(lines):
        alternative = ALTERNATIVE.match(lines[i])
        i += 1
        if not alternative:
            continue
        commands: list[str] = []
        block: list[str] = []
        while i < len(lines) and lines[i].startswith("# "):
            if block or YAML_START.match(lines[i]):
                block.append(lines[i][2:])
            elif command := COMMAND.match(lines[i]):
                commands.append(command[1])
            i += 1
        found.append(Recipe(config, alternative[1], tuple(commands), {**settings, **yaml.safe_load("\n".join(block))}))
    return found


RECIPES = recipes("axolotl_dpo.yml") + recipes("axolotl_sft.yml")


def test_each_config_documents_its_alternatives() -> None:
    assert [r.id for r in RECIPES] == ["dpo-main", "dpo-a", "dpo-b", "sft-main", "sft-a", "sft-b", "sft-c"]
    for recipe in RECIPES:
        assert recipe.commands, f"{recipe.id}: no hegelion dataset command to make its file"
        assert all("--format" in c for c in recipe.commands)
    split = [r for r in RECIPES if any("--split" in c for c in r.commands)]
    assert [r.id for r in split] == ["dpo-b", "sft-c"]
    for recipe in split:  # --split writes OUT's stem + .train.jsonl / .test.jsonl, never OUT itself
        assert recipe.train_file().endswith(".train.jsonl")
        assert recipe.settings["test_datasets"][0]["path"].endswith(".test.jsonl")


# -- running the tools -------------------------------------------------------------------------------------------------


def tool(venv: Path, name: str) -> Path:
    exe = venv / "bin" / name
    if not exe.exists():
        need(f"{name} in its own venv ({venv})", INSTALL)
    return exe


def tool_env(venv: Path, home: Path) -> dict[str, str]:
    """The tool's venv first on PATH (axolotl re-launches itself through `accelerate`), nothing from the Hub, no
    telemetry, and a Hugging Face cache of the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(home),
        AXOLOTL_DO_NOT_TRACK="1",
        DO_NOT_TRACK="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


@dataclass
class Run:
    cwd: Path
    returncode: int
    log: str


def run_all(jobs: dict[str, tuple[list[str], Path, dict[str, str]]], *, parallel: int = 2) -> dict[str, Run]:
    """Run the commands (argv, cwd, env), ``parallel`` at a time: most of each run is importing the tool."""
    pending = list(jobs.items())
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    done: dict[str, Run] = {}
    deadline = time.monotonic() + 900
    while pending or running:
        while pending and len(running) < parallel:
            name, (argv, cwd, env) = pending.pop(0)
            log = cwd / f"{name}.log"
            with open(log, "wb") as out:
                running[name] = (subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT), log)
        for name, (process, log) in list(running.items()):
            if process.poll() is not None:
                done[name] = Run(log.parent, process.returncode, log.read_text(errors="replace"))
                del running[name]
        if time.monotonic() > deadline:
            for process, _ in running.values():
                process.kill()
            pytest.fail(f"still running after 15 minutes: {sorted(running)}")
        time.sleep(0.2)
    return done


def tail(run: Run, lines: int = 40) -> str:
    return "\n".join(run.log.splitlines()[-lines:])


@pytest.fixture(scope="module")
def trace_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, trace_log: Path) -> Path:
    # Its tokenizer learns the traces and the prompt texts the trainers add, so no sequence grows past a few hundred
    # tokens; the model and the tokenizer are then the same for every tool.
    prompts = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    alpaca = example("train_sft")
    prompts.write_text(json.dumps([alpaca.ALPACA_PROMPT, alpaca.ALPACA_PROMPT_NO_INPUT]) + "\n")
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", [trace_log, prompts])


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory: pytest.TempPathFactory, trace_log: Path, tiny_model: Path) -> dict[str, Path]:
    """A folder per recipe, as a user has it: data/traces.jsonl, the files its commands export, config.yml."""
    folders = {}
    for recipe in RECIPES:
        folder = tmp_path_factory.mktemp(recipe.id)
        (folder / "data").mkdir()
        shutil.copy(trace_log, folder / "data" / "traces.jsonl")
        for command in recipe.commands:
            run_hegelion_dataset(shlex.split(command, comments=True)[2:], cwd=folder)
        settings = {**recipe.settings, "base_model": str(tiny_model)}
        (folder / "config.yml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        folders[recipe.id] = folder
    return folders


# `axolotl train` prepares the data itself (the same code as `axolotl preprocess`) and saves it where preprocess would:
# the configs train, their alternatives are preprocessed. Two steps of one row pair each, a checkpoint at the end.
AXOLOTL_TRAIN = ["--max-steps=2", "--logging-steps=1", "--gradient-accumulation-steps=1"]
AXOLOTL_TRAIN += ["--save-strategy=steps", "--save-steps=2"]
# examples/unsloth_{dpo,sft}.py on each format they read, 4-bit (their default) and 16-bit.
UNSLOTH_RUNS = {
    "dpo-chat-4bit": ("unsloth_dpo", "dpo-chat", []),
    "dpo-16bit": ("unsloth_dpo", "dpo", ["--no-4bit"]),
    "sft-chat-4bit": ("unsloth_sft", "sft-chat", []),
    "sft-16bit": ("unsloth_sft", "sft", ["--no-4bit"]),
    "instruction-4bit": ("unsloth_sft", "instruction", []),
}


def selected_runs(session: pytest.Session) -> set[str]:
    """The runs the selected tests of this module read (`-k sft-a` need not train everything)."""
    names = set()
    for item in session.items:
        params = item.callspec.params if isinstance(item, pytest.Function) and hasattr(item, "callspec") else {}
        if item.path != Path(__file__):
            continue
        if "recipe" in params:
            names.add(params["recipe"].id)
        if "config" in params:
            names.add(f"{params['config']}-main")
        if "name" in params:
            names.add(f"unsloth-{params['name']}")
    return names


@pytest.fixture(scope="module")
def runs(
    workdirs: dict[str, Path],
    trace_log: Path,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> dict[str, Run]:
    """Every run of a tool the selected tests read, two at a time (most of each is the tool importing itself); a tool
    whose venv is missing is left out, and its tests say so through need()."""
    wanted = selected_runs(request.session)
    jobs: dict[str, tuple[list[str], Path, dict[str, str]]] = {}
    if (axolotl := AXOLOTL_VENV / "bin" / "axolotl").exists():
        env = tool_env(AXOLOTL_VENV, tmp_path_factory.mktemp("hf-axolotl"))
        for recipe in sorted(RECIPES, key=lambda r: r.variant != "main"):  # the longer runs first
            if recipe.id not in wanted:
                continue
            action = (
                ["train", "config.yml", *AXOLOTL_TRAIN] if recipe.variant == "main" else ["preprocess", "config.yml"]
            )
            jobs[recipe.id] = ([str(axolotl), *action], workdirs[recipe.id], env)
    if (python := UNSLOTH_VENV / "bin" / "python").exists():
        env = tool_env(UNSLOTH_VENV, tmp_path_factory.mktemp("hf-unsloth"))
        for name, (script, fmt, extra) in UNSLOTH_RUNS.items():
            if f"unsloth-{name}" not in wanted:
                continue
            folder = tmp_path_factory.mktemp(f"unsloth-{name}")
            run_hegelion_dataset([str(trace_log), str(folder / "rows.jsonl"), "--format", fmt])
            argv = [str(python), str(EXAMPLES / f"{script}.py"), str(folder / "rows.jsonl"), "--model", str(tiny_model)]
            argv += ["--output", str(folder / "out"), "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1"]
            argv += ["--logging-steps", "1", "--max-length", "256", "--cache-dir", str(folder / "cache"), *extra]
            jobs[f"unsloth-{name}"] = (argv, folder, env)
    return run_all(jobs)


def prepared_rows(folder: Path, recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
    """The rows axolotl prepared, by split ("train", "test"), read with `datasets` from its prepared folder."""
    from datasets import load_from_disk

    root = folder / recipe.settings["dataset_prepared_path"]
    found = [load_from_disk(str(p.parent)) for p in sorted(root.glob("*/dataset_info.json"))]
    train_size = len(read_rows(folder / recipe.train_file()))
    by_split: dict[str, list[dict[str, Any]]] = {}
    for dataset in found:
        by_split["train" if len(dataset) == train_size else "test"] = list(dataset)
    return by_split


# -- what TRL trains on for the same file (examples/train_dpo.py, train_sft.py) ----------------------------------------


def trl_rows(recipe: Recipe, folder: Path, model: Path) -> list[dict[str, Any]]:
    script = example("train_dpo" if recipe.rl else "train_sft")
    argv = [str(folder / recipe.train_file()), "--model", str(model), "--output", str(folder / "trl"), "--cpu"]
    args = script.parser().parse_args([*argv, "--max-length", "1024", "--cache-dir", str(folder / "trl-cache")])
    return list(script.build_trainer(args).train_dataset)


def task_of(text: str) -> str:
    (task,) = [t for t in TASKS if t in text]
    return task


def assert_same_dpo_text(axolotl_rows: list[dict[str, Any]], trl: list[dict[str, Any]], tokenizer: Any) -> None:
    """axolotl hands TRL these strings; TRL adds the end-of-sequence token to a string answer that lacks it."""
    eos = tokenizer.eos_token
    ours = {
        task_of(tokenizer.decode(r["prompt_ids"])): (
            tokenizer.decode(r["prompt_ids"]),
            tokenizer.decode(r["chosen_ids"]).rstrip(),
            tokenizer.decode(r["rejected_ids"]).rstrip(),
        )
        for r in trl
    }
    theirs = {
        task_of(r["prompt"]): (
            r["prompt"],
            (r["chosen"] if r["chosen"].endswith(eos) else r["chosen"] + eos).rstrip(),
            (r["rejected"] if r["rejected"].endswith(eos) else r["rejected"] + eos).rstrip(),
        )
        for r in axolotl_rows
    }
    assert theirs == ours


def labelled_text(row: dict[str, Any], tokenizer: Any) -> str:
    return tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORED])


def assert_same_sft_text(axolotl_rows: list[dict[str, Any]], trl: list[dict[str, Any]], tokenizer: Any) -> None:
    """The whole text and the part that carries the loss, row for row (up to whitespace after the last token)."""

    def texts(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        return {
            task_of(tokenizer.decode(r["input_ids"])): (
                tokenizer.decode(r["input_ids"]).rstrip(),
                labelled_text(r, tokenizer).rstrip(),
            )
            for r in rows
        }

    assert texts(axolotl_rows) == texts(trl)


# -- axolotl -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.id)
def test_axolotl_prepares_the_rows_train_scripts_train_on(
    recipe: Recipe, runs: dict[str, Run], workdirs: dict[str, Path], tiny_model: Path
) -> None:
    from transformers import AutoTokenizer

    tool(AXOLOTL_VENV, "axolotl")
    run = runs[recipe.id]
    assert run.returncode == 0, tail(run)
    folder = workdirs[recipe.id]
    rows = prepared_rows(folder, recipe)
    exported = read_rows(folder / recipe.train_file())
    assert len(rows["train"]) == len(exported) > 0
    if "test_datasets" in recipe.settings:  # the held-out file of --split is prepared too
        assert len(rows["test"]) == len(read_rows(folder / recipe.settings["test_datasets"][0]["path"])) > 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    eos = tokenizer.eos_token

    if recipe.rl:
        # DPO rows: three strings, the prompt ready for the answer, the answers the synthesis and the first thesis.
        for row in rows["train"]:
            assert set(row) == {"prompt", "chosen", "rejected"}, row
            assert row["chosen"].startswith("Synthesis v2:") and row["rejected"].startswith("Thesis:")
            if recipe.settings["datasets"][0]["type"] == "chat_template.default":
                assert row["prompt"].endswith("<|im_start|>assistant\n") and row["chosen"].endswith(eos)
            else:
                assert row["prompt"] == task_of(row["prompt"]) + "\n"  # plain text: the prompt, a newline
        assert_same_dpo_text(rows["train"], trl_rows(recipe, folder, tiny_model), tokenizer)
    else:
        # SFT rows: token ids with labels; only the answer (the synthesis and its end token) carries the loss.
        for row in rows["train"]:
            assert {"input_ids", "labels", "attention_mask"} <= set(row), row
            assert len(row["input_ids"]) == len(row["labels"]) == len(row["attention_mask"])
            answer = labelled_text(row, tokenizer)
            assert answer.startswith("Synthesis v2:") and answer.rstrip().endswith(eos), answer
            first_labelled = next(i for i, label in enumerate(row["labels"]) if label != IGNORED)
            assert task_of(tokenizer.decode(row["input_ids"][:first_labelled]))  # the prompt carries no loss
        assert_same_sft_text(rows["train"], trl_rows(recipe, folder, tiny_model), tokenizer)


def lora_b_weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return {name: t for name, t in load_file(path).items() if "lora_B" in name}


def assert_trained_two_steps(output: Path) -> None:
    """Two finite losses logged, and every LoRA B matrix (zero when the adapter is made) moved."""
    (state_file,) = list(output.glob("checkpoint-*/trainer_state.json")) or [output / "trainer_state.json"]
    state = json.loads(state_file.read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert state["global_step"] == 2 and len(losses) == 2, state["log_history"]
    assert all(math.isfinite(loss) for loss in losses), losses
    lora_b = lora_b_weights(output / "adapter_model.safetensors")
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b.values())


@pytest.mark.parametrize("config", ["dpo", "sft"])
def test_axolotl_trains_each_config_two_steps_on_a_cpu(
    config: str, runs: dict[str, Run], workdirs: dict[str, Path]
) -> None:
    tool(AXOLOTL_VENV, "axolotl")
    run = runs[f"{config}-main"]

    assert run.returncode == 0, tail(run)
    assert_trained_two_steps(workdirs[f"{config}-main"] / f"out/axolotl-{config}")


# -- unsloth -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(UNSLOTH_RUNS))
def test_unsloth_trains_two_steps_on_a_cpu(name: str, runs: dict[str, Run]) -> None:
    tool(UNSLOTH_VENV, "python")
    run = runs[f"unsloth-{name}"]

    assert run.returncode == 0, tail(run)
    assert "training on CPU" in run.log  # unsloth's own word that it ran without a GPU
    assert_trained_two_steps(Path(run.cwd) / "out")
