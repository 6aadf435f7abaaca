"""Atomic file writes: write to a temporary file in the same folder, then rename."""

import os
import tempfile
from typing import Callable

__all__ = ["atomic_write", "truncate_rows"]


def atomic_write(path: str, writer: Callable[[str], None], suffix: str = "") -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically.

    A reader never sees a half-written file, and a failure leaves the old file intact.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> atomic_write(p, lambda tmp: open(tmp, "w").write("hello"))
    >>> open(p).read()
    'hello'
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def truncate_rows(path, keep) -> int:
    r"""Atomically rewrite a text table keeping comment lines and rows whose first field passes ``keep``.

    Streams line by line (colvar files of long runs are large); returns the number of rows dropped.

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "colvar")
    >>> _ = open(p, "w").write("#! FIELDS time x\n0.5 1.0\n1.0 2.0\n1.5 3.0\n")
    >>> truncate_rows(p, lambda t: float(t) <= 1.0)
    1
    >>> open(p).read().splitlines()[-1]
    '1.0 2.0'
    """
    dropped = 0

    def write(tmp):
        nonlocal dropped
        with open(path) as src, open(tmp, "w") as dst:
            for line in src:
                fields = line.split(None, 1)
                if line.startswith("#") or not fields or keep(fields[0]):
                    dst.write(line)
                else:
                    dropped += 1

    atomic_write(path, write)
    return dropped
