"""Secret files: keys and tokens go into files only their owner may read or write (0600)."""
from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, *, new: bool = False) -> Path:
    """Writes `text` to `path`, mode 0600 also when the file was there with a looser mode.
    `new` refuses a file that exists (FileExistsError) instead of replacing it."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    return path
