"""The worker's workspace removal: every kind of path a finished attempt leaves, and nothing a link points at."""

from __future__ import annotations

from pathlib import Path

from xrunner.worker.trash import remove


def test_remove_takes_empty_and_full_workspaces_files_and_links_but_never_what_a_link_points_at(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "file").write_text("not the job's")
    empty, full, file, link, dangling = (tmp_path / name for name in ("empty", "full", "f.log", "link", "dangling"))
    empty.mkdir()
    (full / "deep" / "er").mkdir(parents=True)
    (full / "deep" / "er" / "x").write_text("x")
    (full / "to-outside").symlink_to(outside / "keep")
    file.write_text("log")
    link.symlink_to(outside / "keep")
    dangling.symlink_to(tmp_path / "nowhere")
    remove([empty, full, file, link, dangling, tmp_path / "never-made"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]
    assert (outside / "keep" / "file").read_text() == "not the job's"
