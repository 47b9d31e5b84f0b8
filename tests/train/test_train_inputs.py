"""hegelion train refuses bad input with one line and exit 2, before loading a model and without writing anything:
an unknown method, rows of no known shape, a folder without a train split, a test split, an --out holding something
else, a missing package, a base that is not there. Plus the pure parts: row shapes, methods, the rows TRL gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hegelion_dspy.cli.main import main
from hegelion_dspy.errors import TrainError
from hegelion_dspy.train import api
from hegelion_dspy.train.card import BaseInfo, DataInfo, ModelCard, loss_summary, loss_svg, readme_text
from hegelion_dspy.train.data import choose_method, load_training_data
from hegelion_dspy.train.rows import ALPACA_PROMPT_NO_INPUT, trainer_rows

DPO_CHAT = {
    "prompt": [{"role": "user", "content": "Why?"}],
    "chosen": [{"role": "assistant", "content": "Because, on balance."}],
    "rejected": [{"role": "assistant", "content": "Because."}],
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def export_folder(folder: Path, rows: list[dict], *, card: str = "Filters: demo traces left out.") -> Path:
    write_jsonl(folder / "data" / "train.jsonl", rows)
    write_jsonl(folder / "data" / "test.jsonl", rows[:1])
    (folder / "README.md").write_text(f"<!-- written by hegelion-dspy -->\n{card}\n", encoding="utf-8")
    return folder


def hegelion(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    return int(done.value.code or 0), capsys.readouterr().err


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, err = hegelion(capsys, "train", *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hegelion: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("row", "shape", "method"),
    [
        ({"prompt": "p", "chosen": "c", "rejected": "r"}, "dpo", "dpo"),
        (DPO_CHAT, "dpo-chat", "dpo"),
        ({"prompt": "p", "completion": "c"}, "sft", "sft"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "sft-chat", "sft"),
        ({"instruction": "i", "input": "", "output": "o"}, "instruction", "sft"),
    ],
)
def test_the_method_follows_the_rows(tmp_path: Path, row: dict, shape: str, method: str) -> None:
    data = load_training_data(write_jsonl(tmp_path / "rows.jsonl", [{**row, "metadata": {"model": "openai/x"}}] * 3))
    assert (data.shape, data.method, choose_method(data, None), len(data.rows)) == (shape, method, method, 3)
    assert not data.demo and data.digest.startswith("sha256:") and "metadata" not in data.rows[0]


def test_a_folder_trains_on_its_train_split_and_knows_demo_data(tmp_path: Path) -> None:
    folder = export_folder(tmp_path / "ds", [DPO_CHAT] * 2, card="Filters: demo traces included.")
    data = load_training_data(folder)
    assert data.path == folder / "data" / "train.jsonl" and data.folder == folder and data.demo
    metadata_demo = write_jsonl(tmp_path / "r.jsonl", [{**DPO_CHAT, "metadata": {"model": "embedded/smollm2"}}])
    assert load_training_data(metadata_demo).demo


def test_rows_become_what_each_trainer_reads() -> None:
    plain = {"prompt": "Q", "chosen": "C", "rejected": "R"}
    assert trainer_rows([plain], "dpo", "dpo") == [{"prompt": "Q\n", "chosen": "C", "rejected": "R"}]
    assert trainer_rows([plain], "dpo", "sft") == [{"prompt": "Q\n", "completion": "C"}]
    assert trainer_rows([DPO_CHAT], "dpo-chat", "dpo") == [DPO_CHAT]
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert trainer_rows([chat], "sft-chat", "sft") == [
        {"prompt": chat["messages"][:1], "completion": chat["messages"][1:]}
    ]
    alpaca = trainer_rows([{"instruction": "Do", "input": "", "output": "Done"}], "instruction", "sft")
    assert alpaca == [{"prompt": ALPACA_PROMPT_NO_INPUT.format(instruction="Do"), "completion": "Done"}]


def test_dpo_on_sft_rows_is_refused(tmp_path: Path) -> None:
    data = load_training_data(write_jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "completion": "c"}]))
    with pytest.raises(TrainError, match="method 'dpo' needs preference rows"):
        choose_method(data, "dpo")
    with pytest.raises(TrainError, match="unknown method 'ppo'"):
        choose_method(data, "ppo")


def test_an_unknown_method_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_jsonl(tmp_path / "r.jsonl", [DPO_CHAT])
    code, err = hegelion(
        capsys, "train", str(rows), "--base", "embedded", "--out", str(tmp_path / "o"), "--method", "ppo"
    )
    assert code == 2 and "'ppo' is not one of 'dpo', 'sft'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_rows_of_no_known_shape_are_named_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_jsonl(tmp_path / "r.jsonl", [DPO_CHAT, {"question": "q", "answer": "a"}])
    line = refused(capsys, str(rows), "--base", "embedded", "--out", str(tmp_path / "o"))
    assert f"{rows}:2: a row of no known shape (columns: answer, question)" in line and "dpo: prompt" in line
    assert not (tmp_path / "o").exists()


def test_a_folder_without_a_train_split_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ds").mkdir()
    line = refused(capsys, str(tmp_path / "ds"), "--base", "embedded", "--out", str(tmp_path / "o"))
    assert "has no train split (data/train.jsonl is missing)" in line and "hegelion dataset LOG FOLDER --card" in line
    assert not (tmp_path / "o").exists()


def test_a_test_split_is_never_trained_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = export_folder(tmp_path / "ds", [DPO_CHAT])
    line = refused(capsys, str(folder / "data" / "test.jsonl"), "--base", "embedded", "--out", str(tmp_path / "o"))
    assert "is a test split, held out for hegelion eval" in line and "train.jsonl" in line


def _card(digest: str) -> ModelCard:
    return ModelCard(
        created_at="2026-12-03T15:00:00+00:00",
        hegelion_version="0.1.0",
        base=BaseInfo(spec="other", kind="hub", name="org/other"),
        data=DataInfo(source="x", file="x", digest=digest, shape="dpo", rows=1),
        method="dpo",
        steps=5,
        steps_done=5,
        hyperparameters={},
        device="cpu",
        seconds=1.0,
        steps_per_second=5.0,
        losses=[(1, 0.69), (5, 0.5)],
        demo=False,
    )


def test_an_out_folder_holding_another_model_or_other_files_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_jsonl(tmp_path / "r.jsonl", [DPO_CHAT])
    other = tmp_path / "other"
    other.mkdir()
    (other / "hegelion-model.json").write_text(_card("sha256:0").model_dump_json())
    line = refused(capsys, str(rows), "--base", "embedded", "--out", str(other))
    assert "already holds a different model (dpo of org/other on x, 5 steps)" in line
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    line = refused(capsys, str(rows), "--base", "embedded", "--out", str(mine))
    assert "was not written by hegelion train; it is never replaced" in line
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_a_missing_package_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(api.PACKAGES, "hegelion_no_such_module", "no-such-package")
    rows = write_jsonl(tmp_path / "r.jsonl", [DPO_CHAT])
    line = refused(capsys, str(rows), "--base", "embedded", "--out", str(tmp_path / "o"))
    assert "training needs no-such-package, not installed; install them with: pip install -e '.[train]'" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("./no-such-folder", "no such model folder"),
        ("gguf:{tmp}/r.jsonl", "is not a GGUF file"),
        ("{tmp}/r.jsonl.gguf", "is a GGUF file; write it as --base gguf:"),
    ],
)
def test_a_base_that_is_not_there_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, message: str
) -> None:
    rows = write_jsonl(tmp_path / "r.jsonl", [DPO_CHAT])
    (tmp_path / "r.jsonl.gguf").write_bytes(b"GGUF")
    line = refused(capsys, str(rows), "--base", base.format(tmp=tmp_path), "--out", str(tmp_path / "o"))
    assert message in line
    assert not (tmp_path / "o").exists()


def test_the_loss_curve_is_an_svg_and_the_readme_says_demo() -> None:
    svg = loss_svg([(1, 0.69), (2, 0.6), (3, 0.4)])
    assert svg.startswith("<svg") and svg.count("<polyline") == 1 and ">0.69<" in svg and ">0.4<" in svg
    card = _card("sha256:" + "a" * 64).model_copy(update={"demo": True})
    text = readme_text(card)
    assert text.startswith("---\nlibrary_name: transformers") and "- demo" in text and "**Demo model.**" in text
    assert "0.6900 → 0.5000" in text and "![training loss](loss.svg)" in text


def test_a_long_run_s_loss_is_also_said_as_the_means_of_its_first_and_last_ten_steps() -> None:
    # A DPO run on 266 collected pairs logged 0.69 at step 1 and 1.18 at step 60 (one hard batch), while the
    # means of its first and last ten steps were 0.58 and 0.53: the last step alone reads as a loss that rose.
    losses = [(i, 0.6) for i in range(1, 11)] + [(i, 0.3) for i in range(11, 30)] + [(30, 1.2)]
    assert loss_summary(losses) == "0.6000 → 1.2000 (mean of the first 10 steps 0.6000, of the last 10 0.3900)"
    assert loss_summary(losses[:19], arrow="->") == "0.6000 -> 0.3000"
    assert loss_summary([]) is None


def tiny_gguf(path: Path, **metadata: bool | str) -> Path:
    """A GGUF file of one tensor, written with gguf's own writer."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(path, arch="llama")
    for key, value in metadata.items():
        writer.add_bool(key, value) if isinstance(value, bool) else writer.add_string(key, value)
    writer.add_tensor("token_embd.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_hegelion_keys_are_added_to_a_gguf_file_and_keep_everything_else(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    from gguf import GGUFReader

    from hegelion_dspy.lms.identity import gguf_metadata
    from hegelion_dspy.train.gguf_out import add_metadata

    source = tiny_gguf(tmp_path / "a.gguf", **{"general.name": "tiny"})
    add_metadata(source, tmp_path / "b.gguf", {"hegelion.demo": True, "hegelion.base_sha256": "ab" * 32})

    assert gguf_metadata(tmp_path / "b.gguf") == {
        "general.architecture": "llama",
        "general.name": "tiny",
        "hegelion.demo": True,
        "hegelion.base_sha256": "ab" * 32,
    }
    [before], [after] = GGUFReader(source).tensors, GGUFReader(tmp_path / "b.gguf").tensors
    assert after.name == before.name and after.data.tolist() == before.data.tolist()


def test_a_base_trained_from_a_demo_model_is_demo(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    from hegelion_dspy.train import resolve_base

    marked = resolve_base(f"gguf:{tiny_gguf(tmp_path / 'marked.gguf', **{'hegelion.demo': True})}")
    plain = resolve_base(f"gguf:{tiny_gguf(tmp_path / 'plain.gguf')}")
    assert (marked.kind, marked.demo, plain.demo) == ("gguf", True, False)
    assert marked.sha256 is not None and len(marked.sha256) == 64
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "hegelion-model.json").write_text(json.dumps({"demo": True}))
    assert resolve_base(str(folder)).demo and resolve_base(str(folder)).kind == "folder"


def test_a_hub_base_offline_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "r.jsonl", [DPO_CHAT])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    hegelion = Path(sys.executable).with_name("hegelion")
    args = [str(rows), "--base", "HuggingFaceTB/SmolLM2-135M-Instruct", "--out", str(tmp_path / "o"), "--no-gguf"]
    done = subprocess.run(
        [str(hegelion), "train", *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("hegelion: error: cannot load the base 'HuggingFaceTB/SmolLM2-135M-Instruct' offline")
    assert "hf download HuggingFaceTB/SmolLM2-135M-Instruct" in line and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
