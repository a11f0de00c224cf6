"""The worker's artifact limits: what a workspace may hand over (regular files inside it, under clean names) and the
per-file, per-job count and size caps, each refusal with a note for the job's log."""

from __future__ import annotations

import os
import socket
import stat
import unicodedata
from pathlib import Path

import pytest

from xrunner.worker.artifacts import Budget
from xrunner.worker.collect import file_type_problem, open_regular, select

OUT = ["out/**"]


def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "out").mkdir(parents=True)
    return tmp_path / "ws"


def kept(ws: Path, limit: int = 100) -> tuple[list[str], list[str]]:
    selection = select(ws, OUT, limit)
    return [f.name for f in selection.files], selection.notes


def test_a_symlink_to_etc_passwd_is_skipped_and_reported(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "out" / "passwd").symlink_to("/etc/passwd")
    (ws / "out" / "ok.txt").write_text("ok")
    names, notes = kept(ws)
    assert names == ["out/ok.txt"]
    assert notes == ["out/passwd not kept: it links to outside the workspace"]


def test_a_link_inside_the_workspace_is_kept_as_its_target_and_a_directory_link_is_not_descended(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path)
    (ws / "out" / "a.txt").write_text("a")
    (ws / "out" / "b.txt").symlink_to("a.txt")
    (ws / "out" / "etc").symlink_to("/etc", target_is_directory=True)
    names, _ = kept(ws)
    assert names == ["out/a.txt", "out/b.txt"]


def test_a_fifo_and_a_socket_are_skipped_and_reported_without_blocking(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    os.mkfifo(ws / "out" / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(ws / "out" / "sock"))
        names, notes = kept(ws)
    assert names == []
    assert notes == ["out/pipe not kept: it is a FIFO", "out/sock not kept: it is a socket"]


@pytest.mark.parametrize(("mode", "problem"), [
    (stat.S_IFREG, None), (stat.S_IFCHR, "it is a character device"), (stat.S_IFBLK, "it is a block device"),
    (stat.S_IFIFO, "it is a FIFO"), (stat.S_IFSOCK, "it is a socket"), (stat.S_IFDIR, "it is a directory"),
])
def test_only_a_regular_file_type_is_kept(mode: int, problem: str | None) -> None:
    assert file_type_problem(mode | 0o644) == problem


def test_names_are_nfc_and_a_name_that_collides_once_normalised_keeps_the_first(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    nfd = unicodedata.normalize("NFD", "café.txt")
    (ws / "out" / nfd).write_text("decomposed")
    names, notes = kept(ws)
    assert names == ["out/café.txt"] and names[0] == unicodedata.normalize("NFC", names[0]) and not notes
    (ws / "out" / "café.txt").write_text("composed")
    names, notes = kept(ws)
    assert names == ["out/café.txt"] and notes == ["out/café.txt not kept: another file has the same name in NFC"]


def test_a_name_with_control_characters_is_skipped_and_shown_escaped(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "out" / "evil\x1b[2J.txt").write_text("x")
    names, notes = kept(ws)
    assert names == [] and notes == ["out/evil\\x1b[2J.txt not kept: its name is unprintable, too long, or ends in a"
                                     " blank"]


def test_past_the_count_limit_the_rest_are_reported_not_kept(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    for i in range(5):
        (ws / "out" / f"f{i}").write_text(str(i))
    names, notes = kept(ws, limit=3)
    assert names == ["out/f0", "out/f1", "out/f2"]
    assert notes == ["more than 3 files match; the rest are not kept (the limit is 3)"]


def test_a_file_swapped_for_a_link_after_selection_is_not_opened(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    target = ws / "out" / "a.txt"
    target.write_text("a")
    [found] = select(ws, OUT, 10).files
    target.rename(ws / "kept-aside")  # the checked inode lives on, so the new file cannot reuse its number
    target.write_text("another file at the same path")
    with pytest.raises(OSError, match="not the regular file that was selected"):
        open_regular(found)
    target.unlink()
    target.symlink_to("/etc/passwd")
    with pytest.raises(OSError):  # O_NOFOLLOW: a link is never opened
        open_regular(found)


def test_the_budget_refuses_a_file_over_its_own_cap_and_one_that_would_pass_the_jobs_total() -> None:
    budget = Budget(per_file=100, total=150)
    assert budget.take(101) == "101 bytes, over the limit of 100 bytes per file"
    assert budget.take(100) is None
    assert budget.take(60) == "60 bytes would pass the job's limit of 150 bytes of artifacts in total"
    assert budget.take(50) is None and budget.take(1) is not None
