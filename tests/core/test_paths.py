"""safe_path: every name a client sends stays directly inside the data folder and never clobbers a file unasked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hegelion_dspy.errors import ConfigError, UnsafePathError
from hegelion_dspy.paths import safe_path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def test_a_plain_name_resolves_inside_the_folder(data_dir: Path) -> None:
    assert safe_path(data_dir, "dpo.jsonl") == data_dir.resolve() / "dpo.jsonl"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../escape.jsonl", "separator"),
        ("..", "separator"),
        (".", "separator"),
        ("sub/dpo.jsonl", "separator"),
        ("sub\\dpo.jsonl", "separator"),
        ("/etc/passwd", "absolute"),
        ("~/dpo.jsonl", "absolute"),
        (".hidden.jsonl", "hidden"),
        ("", "empty"),
        ("   ", "empty"),
        ("bad\x00name", "control"),
        ("line\nbreak", "control"),
        (" dpo.jsonl", "whitespace"),
        ("x" * 201, "limit"),
    ],
)
def test_names_that_could_leave_the_folder_are_refused(data_dir: Path, name: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why):
        safe_path(data_dir, name)


def test_a_non_string_name_is_refused(data_dir: Path) -> None:
    with pytest.raises(UnsafePathError, match="empty"):
        safe_path(data_dir, None)  # type: ignore[arg-type]


def test_a_symlink_leading_outside_is_refused(data_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text("secret\n")
    (data_dir / "link.jsonl").symlink_to(outside)

    with pytest.raises(UnsafePathError, match="symlink that leads outside"):
        safe_path(data_dir, "link.jsonl", overwrite=True)
    with pytest.raises(UnsafePathError, match="symlink that leads outside"):
        safe_path(data_dir, "link.jsonl", must_exist=True)
    assert outside.read_text() == "secret\n"


def test_a_dangling_symlink_leading_outside_is_refused(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "new.jsonl").symlink_to(tmp_path / "not-yet.jsonl")
    with pytest.raises(UnsafePathError, match="outside"):
        safe_path(data_dir, "new.jsonl")


def test_a_symlink_inside_the_folder_is_followed(data_dir: Path) -> None:
    (data_dir / "real.jsonl").write_text("{}\n")
    (data_dir / "alias.jsonl").symlink_to(data_dir / "real.jsonl")
    assert safe_path(data_dir, "alias.jsonl", must_exist=True).name == "alias.jsonl"


def test_a_data_folder_reached_through_a_symlink_works(tmp_path: Path, data_dir: Path) -> None:
    link = tmp_path / "link-to-data"
    link.symlink_to(data_dir, target_is_directory=True)
    assert safe_path(link, "dpo.jsonl").parent == data_dir.resolve()


def test_an_existing_file_is_kept_unless_overwrite_is_asked(data_dir: Path) -> None:
    (data_dir / "dpo.jsonl").write_text("old\n")
    with pytest.raises(UnsafePathError, match="already exists"):
        safe_path(data_dir, "dpo.jsonl")
    assert safe_path(data_dir, "dpo.jsonl", overwrite=True).name == "dpo.jsonl"


def test_a_folder_is_not_a_file(data_dir: Path) -> None:
    (data_dir / "sub").mkdir()
    with pytest.raises(UnsafePathError, match="folder"):
        safe_path(data_dir, "sub", overwrite=True)


def test_must_exist_reports_a_missing_file(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no file named 'program\.json'"):
        safe_path(data_dir, "program.json", must_exist=True)


@pytest.mark.skipif(os.sep != "/", reason="POSIX separators")
def test_unicode_names_are_fine(data_dir: Path) -> None:
    assert safe_path(data_dir, "données-été.jsonl").name == "données-été.jsonl"
