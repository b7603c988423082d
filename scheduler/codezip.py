"""Deployment packages: unpack an uploaded zip safely, and describe code as Lambda does.

Used by CreateFunction and UpdateFunctionCode (``Code.ZipFile``) before the function's
configuration is built. Lambda's limits hold (50 MB zipped, 250 MB unzipped), and an archive is
refused whole, before anything is written, if an entry would land outside the target folder
(absolute paths, ``..``), is a link or a device, or the sizes it declares are too large; the
bytes actually written are counted too, since a zip's declared sizes can lie.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InvalidParameterValue, RequestTooLarge

MAX_ZIPPED_BYTES = 50 * 1024 * 1024  # 52,428,800
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # 262,144,000
_CHUNK = 1 << 16
_UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """``CodeSize`` and ``CodeSha256`` of a function's FunctionConfiguration."""

    size: int
    sha256: str  # base64 of the SHA-256, as Lambda writes it


def describe_zip(data: bytes) -> CodeInfo:
    return CodeInfo(len(data), base64.b64encode(hashlib.sha256(data).digest()).decode())


def describe_dir(path: Path) -> CodeInfo:
    """A folder of code (from a template): its total size and a digest of its files' names and
    contents, stable across runs, so CodeSha256 changes exactly when the code does."""
    digest = hashlib.sha256()
    size = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        digest.update(b"\0")
    return CodeInfo(size, base64.b64encode(digest.digest()).decode())


def _entry_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's relative path, or None if it is a directory; refuses escaping names."""
    name = info.filename
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or (path.parts and ":" in path.parts[0]) or ".." in path.parts:
        raise InvalidParameterValue(
            f"Could not unzip uploaded file: entry {name!r} would be written outside the function's folder."
        )
    # Unix file types live in the high 16 bits, for archives made on Unix (create_system 3);
    # zips from elsewhere (and Python's own) may carry permissions only, which is fine.
    kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
    if kind == stat.S_IFLNK:
        raise InvalidParameterValue(
            f"Could not unzip uploaded file: entry {name!r} is a symbolic link, which is not allowed."
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InvalidParameterValue(f"Could not unzip uploaded file: entry {name!r} is not a regular file or folder.")
    if info.is_dir():
        return None
    return path


def _check(archive: zipfile.ZipFile, max_unzipped: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    files = []
    declared = 0
    for info in archive.infolist():
        path = _entry_path(info)
        if path is not None:
            files.append((info, path))
            declared += info.file_size
    if declared > max_unzipped:
        raise InvalidParameterValue(f"Unzipped size must be smaller than {max_unzipped} bytes")
    return files


def zipped_too_large(limit: int) -> RequestTooLarge:
    """Lambda refuses a zip over its 50 MB with 413 RequestEntityTooLargeException."""
    return RequestTooLarge(f"Zipped size must be smaller than {limit} bytes")


def unpack_zip(
    data: bytes, dest: Path, *, max_zipped: int = MAX_ZIPPED_BYTES, max_unzipped: int = MAX_UNZIPPED_BYTES
) -> CodeInfo:
    """Unpack a deployment package into ``dest`` (created; must not exist). On any refusal
    nothing is left behind. Blocking: run it in a thread."""
    if len(data) > max_zipped:
        raise zipped_too_large(max_zipped)
    _unpack(io.BytesIO(data), dest, max_unzipped)
    return describe_zip(data)


def unpack_zip_file(path: Path, dest: Path, *, max_unzipped: int = MAX_UNZIPPED_BYTES) -> None:
    """The same from a zip on disk, read piece by piece (an upload decoded to a file, whose
    size and digest are known already). Blocking: run it in a thread."""
    _unpack(path, dest, max_unzipped)


def _unpack(source: io.BytesIO | Path, dest: Path, max_unzipped: int) -> None:
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, ValueError, OSError):
        raise InvalidParameterValue(_UNZIP_FAILED) from None
    with archive:
        files = _check(archive, max_unzipped)
        dest.mkdir(parents=True)
        try:
            _extract(archive, files, dest, max_unzipped)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise


def _extract(
    archive: zipfile.ZipFile, files: list[tuple[zipfile.ZipInfo, PurePosixPath]], dest: Path, max_unzipped: int
) -> None:
    root = dest.resolve()
    written = 0
    for info, rel in files:
        target = root.joinpath(*rel.parts)
        if not target.resolve().is_relative_to(root):  # belt and braces: parts are already checked
            raise InvalidParameterValue(f"Could not unzip uploaded file: entry {info.filename!r} escapes the folder.")
        executable = bool((info.external_attr >> 16) & 0o111)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > max_unzipped:
                        raise InvalidParameterValue(f"Unzipped size must be smaller than {max_unzipped} bytes")
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
            raise InvalidParameterValue(f"{_UNZIP_FAILED} ({info.filename}: {exc})") from None
        os.chmod(target, 0o755 if executable else 0o644)
    # Folders readable by all too, whatever the umask: environments run as another uid holding
    # no capability. The code stays private all the same: the code store's root is 0700, and
    # in an environment's view it holds nothing but that function's own revision.
    for folder in (root, *(p for p in root.rglob("*") if p.is_dir())):
        os.chmod(folder, 0o755)
