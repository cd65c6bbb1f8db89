"""One cookie jar per run, shared by all its worker threads (a server's cookies reach every
later request it allows them on, whichever thread sends it), and the Netscape/Mozilla
cookie file it is loaded from and saved to (`--cookies FILE`, as `curl -b/-c` and
`wget --load-cookies/--save-cookies` read and write it). Which host gets which cookie is
`http.cookiejar`'s policy, as in requests."""

from __future__ import annotations

import contextlib
import os
import tempfile
from http.cookiejar import LoadError, MozillaCookieJar
from pathlib import Path

from requests.cookies import RequestsCookieJar

from fetcher.errors import UsageError


class SharedJar(RequestsCookieJar):
    """A jar threads may share: `http.cookiejar` locks adding and matching cookies; this
    also locks what requests does by iterating the jar (copying it, counting it)."""

    def copy(self) -> SharedJar:
        with self._cookies_lock:  # type: ignore[attr-defined]
            fresh = SharedJar()
            fresh.set_policy(self.get_policy())
            fresh.update(self)
            return fresh

    def __len__(self) -> int:
        with self._cookies_lock:  # type: ignore[attr-defined]
            return super().__len__()


def load_cookies(path: Path) -> SharedJar:
    """The cookies of a cookie file (none if it does not exist yet: it will be written)."""
    jar = SharedJar()
    if not path.exists():
        return jar
    source = MozillaCookieJar()
    try:
        source.load(str(path), ignore_discard=True)
    except (LoadError, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the cookie file {path}: {exc}") from None
    for cookie in source:
        jar.set_cookie(cookie)
    return jar


def save_cookies(jar: SharedJar, path: Path) -> None:
    """Write the jar's cookies (session ones too, as curl does) in place of the file, at
    once: a reader never sees half a file."""
    out = MozillaCookieJar()
    with jar._cookies_lock:  # type: ignore[attr-defined]
        for cookie in jar:
            out.set_cookie(cookie)
    folder = path.absolute().parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    os.close(fd)
    try:
        out.save(temp, ignore_discard=True)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise UsageError(f"cannot write the cookie file {path}: {exc.strerror}") from None
