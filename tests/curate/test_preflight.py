"""The export target (a dataset file or a card folder) and the labels sidecar are checked writable, with space to
spare, before any work: an export writes no row and a review app takes no label it could not keep. One line names
the path and the fix; the CLI exits 2 (a mistake, refused before anything ran)."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.review import ReviewConfig, create_app
from hegelion_dspy.store import TraceStore

SYSFS = Path("/sys/hegelion-test")  # sysfs: nobody, not even root, creates files there
needs_sysfs = pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a sysfs at /sys")


def _chmod_binds() -> bool:
    """Whether this process is refused a file in a folder chmod 0555 (root, with CAP_DAC_OVERRIDE, is not)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
        try:
            Path(folder, "probe").touch()
        except PermissionError:
            return True
        finally:
            os.chmod(folder, stat.S_IRWXU)
        return False


not_root = pytest.mark.skipif(not _chmod_binds(), reason="this user writes into a chmod 0555 folder (root)")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    store = TraceStore(tmp_path / "logs" / "log.jsonl")
    run_dialectic("task", lm=ScriptedLM(), store=store)
    return store.path


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield folder
    folder.chmod(stat.S_IRWXU)


def _refuse_new_files(monkeypatch: pytest.MonkeyPatch, code: int = errno.EROFS) -> None:
    """Every new file fails as on a read-only (or full) disk: the check's probe is the first file made."""

    def mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("card", [False, True], ids=["file", "card-folder"])
def test_an_injected_read_only_disk_refuses_the_export_before_any_row(
    log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, card: bool
) -> None:
    out = tmp_path / "out" / ("dataset" if card else "dpo.jsonl")
    what = "dataset folder" if card else "dataset file"
    _refuse_new_files(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        export_dataset([log], out, include_demo=True, card=card)
    assert str(caught.value) == (
        f"cannot write the {what} {out}: Read-only file system (EROFS); nothing was written. Put it on a writable "
        "disk (give another output path)"
    )
    assert _files(tmp_path / "out") == []


def test_a_card_folder_on_a_nearly_full_disk_is_refused(
    log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs

    def nearly_full(path: object) -> os.statvfs_result:
        fields = list(real(path))  # type: ignore[arg-type]
        fields[4] = 1  # f_bavail: one block
        return os.statvfs_result(fields)

    monkeypatch.setattr(os, "statvfs", nearly_full)
    out = tmp_path / "card"
    with pytest.raises(ConfigError, match=r"^the disk of the dataset folder .*/card has .* KiB free, less than the 16"):
        export_dataset([log], out, include_demo=True, card=True)
    assert not out.exists()


@not_root
@pytest.mark.parametrize("card", [False, True], ids=["file", "card-folder"])
def test_a_chmod_read_only_folder_refuses_the_export(log: Path, read_only: Path, card: bool) -> None:
    out = read_only / ("dataset" if card else "dpo.jsonl")
    with pytest.raises(ConfigError, match=r"Permission denied \(EACCES\); nothing was written"):
        export_dataset([log], out, include_demo=True, card=card)
    assert list(read_only.iterdir()) == []


@needs_sysfs
def test_the_cli_refuses_a_card_folder_it_cannot_write_in_one_line(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hegelion_dspy.cli.dataset import main

    with pytest.raises(SystemExit) as done:
        main([str(log), str(SYSFS / "card"), "--card", "--include-demo"])
    out, err = capsys.readouterr()
    assert done.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"hegelion: error: cannot write the dataset folder {SYSFS}")
    assert "nothing was written. Put it on a writable disk (give another output path)" in err


def test_a_labels_sidecar_that_cannot_be_written_stops_the_review_app_before_it_serves(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_new_files(monkeypatch, errno.ENOSPC)
    with pytest.raises(ConfigError) as caught:
        create_app(ReviewConfig(log_path=log))
    assert str(caught.value) == (
        f"cannot write the labels sidecar {log}.labels: No space left on device (ENOSPC); the review app was not "
        "started. Put it on a writable disk (copy the log to a writable folder and review the copy)"
    )


@not_root
def test_a_review_of_a_log_in_a_read_only_folder_is_refused_in_one_line(
    log: Path, read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hegelion_dspy.cli.review import main

    kept = read_only / "log.jsonl"
    read_only.chmod(stat.S_IRWXU)
    kept.write_bytes(log.read_bytes())
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(SystemExit) as done:
        main([str(kept), "--port", "0"])
    _, err = capsys.readouterr()
    assert done.value.code == 2 and err.count("\n") == 1
    assert f"cannot write the labels sidecar {kept}.labels: Permission denied (EACCES)" in err


@pytest.mark.skipif(sys.platform != "linux", reason="an existing sidecar opened read-only by mode")
@not_root
def test_an_existing_sidecar_without_write_permission_is_refused(log: Path) -> None:
    sidecar = Path(f"{log}.labels")
    sidecar.write_bytes(b"")
    sidecar.chmod(stat.S_IRUSR)
    with pytest.raises(ConfigError, match=r"cannot write the labels sidecar .*\(EACCES\)"):
        create_app(ReviewConfig(log_path=log))
