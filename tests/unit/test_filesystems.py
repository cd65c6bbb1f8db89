"""`ext4_without_journal`: read from /proc and /sys, here fake trees of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fetcher.filesystems import ext4_without_journal


def fake_system(
    root: Path, folder: Path, *, fstype: str, journals: list[str] | None, link: bool = True
) -> tuple[Path, Path]:
    """/proc and /sys as they would be with `folder` on /dev/vdz of type `fstype`;
    `journals` are /proc/fs/jbd2's entries (None: no such folder)."""
    proc, sys = root / "proc", root / "sys"
    device = f"{os.major(folder.stat().st_dev)}:{os.minor(folder.stat().st_dev)}"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        f"36 1 {device} / / rw,relatime shared:1 - {fstype} /dev/vdz rw,discard\n"
    )
    (sys / "dev" / "block").mkdir(parents=True)
    if link:
        (sys / "dev" / "block" / device).symlink_to("../../devices/virtual/block/vdz")
    if journals is not None:
        (proc / "fs" / "jbd2").mkdir(parents=True)
        for name in journals:
            (proc / "fs" / "jbd2" / name).mkdir()
    return proc, sys


@pytest.mark.parametrize(
    ("fstype", "journals", "link", "expected"),
    [
        ("ext4", ["vdz-8"], True, False),  # journaled
        ("ext4", [], True, True),  # no journal, another file system's journal neither
        ("ext4", ["vda-8", "loop0-8"], True, True),  # only other devices have one
        ("ext4", None, True, True),  # no journal anywhere: no jbd2 folder at all
        ("xfs", None, True, False),
        ("tmpfs", None, True, False),
        ("ext4", None, False, False),  # the device unknown to /sys: claim nothing
    ],
)
def test_an_ext4_without_a_journal_is_told_apart(
    tmp_path: Path, fstype: str, journals: list[str] | None, link: bool, expected: bool
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    proc, sys = fake_system(tmp_path / "root", folder, fstype=fstype, journals=journals, link=link)
    assert ext4_without_journal(folder, proc, sys) is expected


def test_nothing_is_claimed_where_nothing_can_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    proc, sys = fake_system(tmp_path / "root", folder, fstype="ext4", journals=None)
    assert ext4_without_journal(tmp_path / "missing", proc, sys) is False  # no such folder
    (proc / "self" / "mountinfo").write_text("22 1 0:21 / /proc rw - proc proc rw\n")
    assert ext4_without_journal(folder, proc, sys) is False  # its device not mounted
    (proc / "self" / "mountinfo").unlink()
    assert ext4_without_journal(folder, proc, sys) is False  # no /proc (not Linux)
