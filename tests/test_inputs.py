"""Finding the input files: the string shortcuts in `discover` give what the plain pathlib reading gives."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from summarizer.batch.inputs import _is_symlink, _suffix, discover, glob_regex


def _plain_discover(root: Path, pattern: str, exclude: tuple[Path, ...] = ()) -> tuple[list[Any], list[Any]]:
    """`discover` as it read before: a Path per file, pathlib's suffix, is_symlink and equality."""
    matcher = glob_regex(pattern)
    real_root = root.resolve()
    excluded = {p.resolve() for p in exclude}
    found: list[tuple[str, str]] = []
    refused: list[str] = []
    seen: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = PurePosixPath(Path(directory).relative_to(root).as_posix())
        real_directory = Path(os.path.realpath(directory))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = (base / name).as_posix()
            if not matcher.match(rel):
                continue
            path = root / rel
            article_id = PurePosixPath(rel).with_suffix("").as_posix() if PurePosixPath(rel).suffix else rel
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    refused.append(f"{path}: link")
                    continue
                if not target.is_relative_to(real_root):
                    refused.append(f"{path}: outside")
                    continue
            else:
                target = real_directory / name
            if target in excluded:
                continue
            if article_id in seen:
                refused.append(f"{path}: taken")
                continue
            seen[article_id] = rel
            found.append((rel, article_id))
    return found, refused


def _random_tree(root: Path, rng: random.Random) -> list[Path]:
    """Nested folders of files with varied names (dots, no extension, hidden, same stem) and links."""
    stems = ["a", "b.c", "x.", "a.b.c", "数据", "v1.2", "z"]
    suffixes = ["", ".txt", ".md", ".", ".tar.gz", ".TXT"]
    folders = [root]
    for _ in range(rng.randint(1, 5)):
        folder = rng.choice(folders) / rng.choice(["sub", "d.x", ".hidden", "二", "n"])
        folder.mkdir(exist_ok=True)
        folders.append(folder)
    files = []
    for _ in range(rng.randint(5, 25)):
        path = rng.choice(folders) / (
            rng.choice(["", "."]) * (rng.random() < 0.1) + rng.choice(stems) + rng.choice(suffixes)
        )
        path.write_text("x", encoding="utf-8")
        files.append(path)
    for _ in range(rng.randint(0, 4)):
        link = rng.choice(folders) / f"link{rng.randint(0, 9)}{rng.choice(suffixes)}"
        if link.exists() or link.is_symlink():
            continue
        target = rng.choice([*files, root / "missing.txt", root.parent / "outside.txt", link])
        link.symlink_to(target)
    return files


@pytest.mark.parametrize("seed", range(12))
def test_discover_matches_the_plain_pathlib_reading(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    (tmp_path / "outside.txt").write_text("x", encoding="utf-8")
    root = tmp_path / "in"
    root.mkdir()
    files = _random_tree(root, rng)
    exclude = (rng.choice(files),) if files else ()
    for pattern in ("**/*.txt", "**/*", "*", "sub/*.md", "**/*.t?t"):
        candidates, refused = discover(root, pattern, exclude=exclude)
        plain_found, plain_refused = _plain_discover(root, pattern, exclude)
        assert [(c.rel, c.article_id) for c in candidates] == plain_found
        assert [record["message"].split(":")[0] + ":" for record in refused] == [
            message.split(":")[0] + ":" for message in plain_refused
        ]


def test_suffix_is_pathlibs() -> None:
    rng = random.Random(5)
    names = ["".join(rng.choice("ab.c数") for _ in range(rng.randint(1, 8))) for _ in range(2000)]
    for name in names:
        if name.startswith("."):
            continue
        assert _suffix(name) == PurePosixPath(name).suffix, name


def test_is_symlink_is_pathlibs(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for name in ("file", "link", "broken", "loop", "missing", "file/below", "loop/below"):
        assert _is_symlink(str(tmp_path / name)) == (tmp_path / name).is_symlink(), name


def test_is_symlink_raises_what_pathlib_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str) -> os.stat_result:
        raise PermissionError(errno.EACCES, "denied", path)

    monkeypatch.setattr(os, "lstat", denied)
    with pytest.raises(PermissionError):
        _is_symlink(str(tmp_path / "x"))
