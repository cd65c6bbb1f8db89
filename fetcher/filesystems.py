"""What kind of file system a folder is on, where that changes what a measurement of it
means (Linux; elsewhere nothing is known and nothing is claimed)."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
SYS = Path("/sys")


def ext4_without_journal(folder: Path, proc: Path = PROC, sys: Path = SYS) -> bool:
    """Whether `folder` is on an ext4 file system that has no journal.

    There the kernel will not reuse an inode freed in the last one to six minutes, and it
    checks every such inode, one by one, each time it creates a file: runs that create many
    files slow down after many were deleted (half speed measured, after deleting as many),
    which no sample taken before can foresee."""
    try:
        st_dev = os.stat(folder).st_dev
        device = f"{os.major(st_dev)}:{os.minor(st_dev)}"
        fstype = next(
            line.split(" - ", 1)[1].split()[0]
            for line in (proc / "self" / "mountinfo").read_text().splitlines()
            if line.split()[2] == device
        )
        if fstype != "ext4":
            return False
        name = Path(os.readlink(sys / "dev" / "block" / device)).name
        journals = proc / "fs" / "jbd2"  # one entry per journal: "<device>-<inode>"
        names = [entry.name for entry in journals.iterdir()] if journals.is_dir() else []
    except (OSError, StopIteration, IndexError):
        return False
    return not any(entry.startswith(f"{name}-") for entry in names)
