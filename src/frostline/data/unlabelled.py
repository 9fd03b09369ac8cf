"""Reading text files (UTF-8 checked, CSV / TSV rows, JSON lines), and inputs without labels for ``predict``: a
table's text column, a ``.txt`` file, or a folder of images.

The readers come first: :mod:`frostline.data.dataset` builds labelled data on them (so this module imports it lazily).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import FrostlineError, did_you_mean
from .dataset import IMAGE_SUFFIXES, Dataset
from .images import image_tensor, images_in, skipped_notes


def _delimiter(path: Path, first_line: str, given: str | None = None) -> str:
    if given is not None:
        return check_delimiter(given)
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    return "\t" if "\t" in first_line else ","


#: other ways to write a separator on a command line
DELIMITER_NAMES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


def check_delimiter(given: str) -> str:
    """The one-character separator ``given`` stands for (``\\t`` / ``tab`` for a tab), or one clear error."""
    sep = DELIMITER_NAMES.get(given.lower(), given)
    if len(sep) != 1 or sep in "\"\r\n":
        raise FrostlineError(f"--delimiter must be one character (or tab, comma, semicolon, pipe, space), got "
                             f"{given!r}")
    return sep


def _separator_hint(header: list[str]) -> str:
    """When a file read with commas has one column holding another separator: which, and how to say so."""
    if len(header) != 1:
        return ""
    found = [s for s in (";", "|", "\t", ":") if s in header[0]]
    if not found:
        return ""
    name = {";": "';'", "|": "'|'", "\t": "tab", ":": "':'"}[found[0]]
    return (f"; the file was read with commas and its header is one column holding {name}: it looks separated by "
            f"{name}: pass --delimiter {name}")


#: header names that usually hold the text, and the label
TEXT_NAMES = ("text", "sms", "message", "sentence", "review", "content", "body", "comment", "tweet", "document")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "y", "tag")


def _column_guess(header: list[str]) -> str:
    """``; this looks like --text-column SMS --label-column Label`` when the header's names say which is which."""
    text = next((h for h in header if h.lower() in TEXT_NAMES), None)
    label = next((h for h in header if h.lower() in LABEL_NAMES), None)
    if text is None or label is None:
        return ""
    return f"; it looks like --text-column {text} --label-column {label}"


def column_index(spec: str | int | None, header: list[str] | None, default: str, what: str, path: Path) -> int:
    """The number of the column ``spec`` (a name in ``header`` or a number; ``default`` when ``None``)."""
    spec = default if spec is None else spec
    if isinstance(spec, int) or str(spec).isdigit():
        return int(spec)
    if header is None:
        raise FrostlineError(
            f"{path}: {what} column {spec!r} is a name but the file has no header; give a column number such as 0"
        )
    if spec not in header:
        hint = _separator_hint(header)
        if hint:
            raise FrostlineError(f"{path}: no {what} column {spec!r}{hint}")
        raise FrostlineError(
            f"{path}: no {what} column {spec!r}; the header has {header}{did_you_mean(str(spec), header)}"
            f"{_column_guess(header)} (a file without a header takes column numbers, e.g. --text-column 1 "
            "--label-column 0)"
        )
    return header.index(spec)


def read_utf8(p: Path) -> str:
    """The text of ``p`` (UTF-8, a leading byte-order mark dropped); anything else is a :class:`FrostlineError`
    naming the line and byte where decoding failed."""
    data = p.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FrostlineError(f"{p}: is UTF-16 text; expected UTF-8: re-save it as UTF-8 (e.g. 'CSV UTF-8' in a "
                             "spreadsheet, or iconv -f utf-16 -t utf-8)")
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    head = data[:4096]
    control = sum(byte < 32 and byte not in b"\t\n\r\f" for byte in head)
    if b"\0" in head or control > len(head) // 20:
        raise FrostlineError(f"{p}: is a binary file ({control} control bytes in its first {len(head)} bytes); "
                             "expected a UTF-8 text file (CSV, TSV, JSONL or .txt)")
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line = data.count(b"\n", 0, at) + 1
        column = at - (data.rfind(b"\n", 0, at) + 1) + 1
        raise FrostlineError(
            f"{p}: not UTF-8 text: byte 0x{data[at]:02x} at line {line}, byte {column} of the line (offset {at}) "
            "cannot be decoded (Latin-1 or Windows-1252?); expected UTF-8: re-save the file as UTF-8 (e.g. iconv -f "
            f"latin1 -t utf-8 {p.name} > utf8-{p.name})"
        ) from None


def json_lines(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(0-based line number, object) of every non-blank line of a JSON Lines file; a line that is not a JSON
    object is a :class:`FrostlineError` naming it."""
    for i, line in enumerate(io.StringIO(read_utf8(p), newline=None)):
        if not line.strip():
            continue
        hint = " (for a JSON array file: jq -c '.[]' makes JSON lines of it)" if line.lstrip()[:1] == "[" else ""
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FrostlineError(f"{p}, line {i + 1}: not valid JSON ({exc.msg}, column {exc.colno}); expected one "
                                 f"JSON object per line{hint}") from None
        if not isinstance(obj, dict):
            kind = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(obj), "a number")
            raise FrostlineError(f"{p}, line {i + 1}: expected a JSON object such as {{\"text\": ..., \"label\": "
                                 f"...}}, got {kind}: {line.strip()[:60]}{hint}")
        yield i, obj


def read_rows(p: Path, delimiter: str | None = None) -> list[list[str]]:
    """The rows of a CSV (quoted fields) or TSV (tab-separated, no quoting) file, read as UTF-8; ``delimiter``
    overrides the separator (default: tab for .tsv or a first line with a tab, else comma)."""
    fh = io.StringIO(read_utf8(p), newline="")
    delim = _delimiter(p, fh.readline(), delimiter)
    fh.seek(0)
    try:
        rows = list(csv.reader(fh, delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL))
    except csv.Error as exc:
        raise FrostlineError(f"{p}: not a readable CSV file ({exc}); expected comma- or tab-separated text") from None
    if not rows:
        raise FrostlineError(f"{p}: the file is empty")
    return rows


def read_unlabelled(path: str | os.PathLike[str], text_column: str | int | None = None, header: bool | None = None,
                    image_size: int = 64, delimiter: str | None = None, recorded: str | int | None = None,
                    ) -> tuple[Dataset, list[str]]:
    """Read inputs without labels, for prediction: a text table's text column, a ``.txt`` file (one text per line),
    a folder of images (searched recursively; what was skipped is in the dataset's ``notes``) or one image file.
    Returns a dataset (labels all 0, no label names) and one display name per sample (the text, or the image's path
    relative to the folder). ``recorded``: the text column a run was trained with, used for a table of several
    columns when ``text_column`` is not given.
    """

    p = Path(path)
    if p.is_dir():
        return _read_unlabelled_images(p, image_size)
    if not p.is_file():
        raise FrostlineError(f"data {str(path)!r} does not exist")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return _read_one_image(p, image_size)
    if p.suffix.lower() == ".txt":
        lines = io.StringIO(read_utf8(p), newline=None)
        pairs = [(i, line.rstrip("\n")) for i, line in enumerate(lines) if line.strip()]
    elif p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        key = str(text_column or "text")
        pairs = [(i, str(obj[key])) for i, obj in json_lines(p) if obj.get(key) is not None and str(obj[key]).strip()]
    else:
        pairs = _unlabelled_rows(p, text_column, header, delimiter, recorded)
    if not pairs:
        raise FrostlineError(f"{p}: no texts found (column {text_column!r})")
    texts = [t for _, t in pairs]
    ds = Dataset("text", texts, np.zeros(len(texts), dtype=np.int64), [], np.array([i for i, _ in pairs]), str(p))
    return ds, texts


def _unlabelled_rows(p: Path, text_column: str | int | None, header: bool | None, delimiter: str | None = None,
                     recorded: str | int | None = None) -> list[tuple[int, str]]:
    rows = read_rows(p, delimiter)
    first_row = [c.strip() for c in rows[0]]
    if text_column is None and recorded is not None and str(recorded) in first_row and max(map(len, rows)) > 1:
        text_column = recorded  # several columns, one named as the run's text column: that one
    if text_column is not None and not str(text_column).isdigit():
        has_header = True if header is None else header
    elif text_column is not None:
        has_header = bool(header)
    else:  # one column: a list of texts (a header only if it reads "text"); else the column must be named
        if max(len(r) for r in rows) > 1:
            trained = f"; the run's text column {str(recorded)!r} is not in its header" if recorded is not None else ""
            raise FrostlineError(f"{p} has {len(first_row)} columns{trained}; say which holds the text with "
                                 f"--text-column (a name from {first_row} or a number)")
        has_header = first_row[0].lower() == "text" if header is None else header
        text_column = 0
    head = first_row if has_header else None
    col = column_index(text_column, head, "text", "text", p)
    width = max((len(r) for r in rows[:1000]), default=0)
    if col >= width:
        raise FrostlineError(f"{p}: text column {col} does not exist: the rows have {width} column(s), numbered "
                             f"0..{width - 1}")
    out = []
    for i, row in enumerate(rows[1:] if has_header else rows):
        if len(row) > col and row[col].strip():
            out.append((i, row[col]))
    return out


def _read_unlabelled_images(base: Path, image_size: int) -> tuple[Dataset, list[str]]:
    images, paths, unreadable, others = images_in(base, image_size)
    names = [str(f.relative_to(base)) for f in paths]
    if not images:
        raise FrostlineError(f"{base}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ds = Dataset("image", torch.stack(images), np.zeros(len(images), dtype=np.int64), [], np.arange(len(images)),
                 str(base), len(unreadable), [str(base / n) for n in names],
                 notes=skipped_notes(base, unreadable, others))
    return ds, names


def _read_one_image(p: Path, image_size: int) -> tuple[Dataset, list[str]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            x = image_tensor(im, image_size).unsqueeze(0)
    except (UnidentifiedImageError, OSError) as exc:
        raise FrostlineError(f"{p}: cannot be read as a picture ({type(exc).__name__}); expected a PNG, JPEG, BMP, "
                             "GIF, TIFF or WebP file") from None
    return Dataset("image", x, np.zeros(1, dtype=np.int64), [], np.arange(1), str(p), 0, [str(p)]), [p.name]
