"""Finding the input files: a folder walked with a `--glob` pattern, safely (no escaping the
folder, no following links out of it, undecodable names reported instead of crashing)."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .report import error_record


@dataclass(frozen=True, slots=True)
class Candidate:
    """One input file: the folder, its path relative to it (POSIX) and its article id.

    Kept small (a huge folder holds one of these per file while it runs): the folder object is
    shared and the path to read is derived on demand.
    """

    root: Path
    rel: str
    article_id: str

    @property
    def path(self) -> Path:
        return self.root / self.rel


def _glob_part(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        ch = part[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "^") else i + 1)) > 0:
            body = part[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over relative POSIX paths: `*` and `?` stay inside one folder, `**/` spans any number.

    Raises:
        ConfigError: the pattern is empty, absolute, or climbs out with `..`.
    """
    parts = pattern.split("/")
    if not pattern or pattern.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", pattern):
        raise ConfigError(f"--glob {pattern!r}: must be relative to the folder (no leading /, no ..)")
    regex = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex.append(".*" if last else "(?:[^/]+/)*")
        else:
            regex.append(_glob_part(part) + ("" if last else "/"))
    return re.compile("".join(regex) + r"\Z")


def _undecodable(name: str) -> bool:
    """Python keeps undecodable bytes of a file name as lone surrogates; they cannot be written out."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _suffix(name: str) -> str:
    """A file name's extension as `PurePosixPath(name).suffix` gives it ("" for none), read off the string."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


# The errors `Path.is_symlink` takes for "not a link" rather than raising.
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _is_symlink(path: str) -> bool:
    """`Path(path).is_symlink()` without building a Path (one per input file adds up)."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError as exc:
        if exc.errno not in _NOT_THERE:
            raise
        return False
    except ValueError:
        return False


def discover(root: Path, pattern: str, exclude: Iterable[Path] = ()) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Files under `root` matching `pattern`, in sorted order, and a refusal record for each bad one.

    Hidden files and folders (leading dot) are left out. Symlinked folders are not descended into;
    a symlinked file is read only if it resolves to a file inside `root`.
    """
    matcher = glob_regex(pattern)
    real_root = root.resolve()
    excluded = {str(p.resolve()) for p in exclude}
    candidates: list[Candidate] = []
    refused: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    walk_errors: list[OSError] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False, onerror=walk_errors.append):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        # Per file, plain strings: a Path per name costs more than the rest of the loop (thousands of files).
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # Where a plain file of this folder really is: the folder resolved once, not every file's
        # path component by component (a tenth of a second of CPU per thousand files).
        real_directory = os.path.realpath(directory)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if _undecodable(name):  # a name that is not valid UTF-8 costs that one file, not the batch
                shown = os.fsencode(name).decode("utf-8", "backslashreplace")
                where = os.path.join(directory, shown)
                refused.append(
                    error_record(shown, where, f"{where}: file name is not valid UTF-8; rename it", 0, "InputError")
                )
                continue
            rel = prefix + name
            if not matcher.match(rel):
                continue
            article_id = rel[: len(rel) - len(_suffix(name))]
            if _is_symlink(os.path.join(directory, name)):
                path = root / rel
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError) as problem:
                    loop = isinstance(problem, RuntimeError) or getattr(problem, "errno", None) == errno.ELOOP
                    refused.append(
                        error_record(
                            article_id,
                            str(path),
                            f"{path}: {'symlink loop' if loop else 'broken symlink'}, not read",
                            0,
                            "InputError",
                        )
                    )
                    continue
                if not target.is_relative_to(real_root):
                    refused.append(
                        error_record(
                            article_id,
                            str(path),
                            f"{path}: symlink points outside the input folder ({target}); not followed",
                            0,
                            "InputError",
                        )
                    )
                    continue
                if str(target) in excluded:
                    continue
            elif os.path.join(real_directory, name) in excluded:
                continue
            if article_id in seen:
                path = root / rel
                refused.append(
                    error_record(
                        article_id,
                        str(path),
                        f"{path}: article id {article_id!r} is already taken by {seen[article_id]}",
                        0,
                        "InputError",
                    )
                )
                continue
            seen[article_id] = rel
            candidates.append(Candidate(root, rel, article_id))
    for exc in walk_errors:
        refused.append(
            error_record(
                str(exc.filename or root),
                str(exc.filename or root),
                f"{exc.filename}: cannot list folder ({exc.strerror or exc})",
                0,
                "InputError",
            )
        )
    return candidates, refused
