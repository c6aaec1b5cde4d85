"""ZIP archives: export every table at one ts to a ZIP, import an archive or one table's
JSONL/CSV — validated against the schema and atomic (one transaction: all or nothing).

ZIP layout (as Convex's snapshot export): `<table>/documents.jsonl` (one convex-encoded JSON
document per line, `_id` and `_creationTime` included), `_tables/documents.jsonl` (table
names and numbers, so imported ids stay valid), `_storage/<storageId>` (stored file bytes).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reactive.database import Database
from reactive.errors import ReactiveError, ValidationError
from reactive.file_storage import STORAGE_TABLE, BlobStore
from reactive.transaction import Transaction, TransactionLimits
from reactive.types import Value
from reactive.values import decode_value, loads_stored

__all__ = ["ArchiveError", "ImportSummary", "export_archive", "import_archive", "import_table"]

#: progress(label, done, total)
Progress = Callable[[str, int, int], None]
TABLES_FILE = "_tables/documents.jsonl"


class ArchiveError(ValidationError):
    """An import file is malformed or its data does not fit; says which file and line."""

    short_msg = "ImportFailed"


@dataclass(slots=True)
class ImportSummary:
    documents: dict[str, int] = field(default_factory=dict)
    files: int = 0

    @property
    def total(self) -> int:
        return sum(self.documents.values())


def _quiet(label: str, done: int, total: int) -> None:
    pass


# -- export -----------------------------------------------------------------------------------


async def export_archive(
    db: Database, blobs: BlobStore | None, path: Path, progress: Progress = _quiet
) -> dict[str, int]:
    """Write every table as of one snapshot to the ZIP at `path`; returns documents per table."""
    ts = db.latest_ts
    counts: dict[str, int] = {}
    tables = db.catalog.tables()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        numbers = [{"name": t, "number": db.catalog.table_number(t)} for t in tables]
        archive.writestr(TABLES_FILE, b"".join(orjson.dumps(n) + b"\n" for n in numbers))
        for table in tables:
            counts[table] = await _export_table(db, blobs, archive, table, ts, progress)
    return counts


async def _export_table(
    db: Database,
    blobs: BlobStore | None,
    archive: zipfile.ZipFile,
    table: str,
    ts: int,
    progress: Progress,
) -> int:
    number = db.catalog.table_number(table)
    assert number is not None
    count = 0
    with archive.open(f"{table}/documents.jsonl", "w") as out:
        async for stored in db.iter_documents(number, ts):
            out.write(stored.value + b"\n")  # stored values are already convex-encoded JSON
            count += 1
            if count % 1000 == 0:
                progress(f"export {table}", count, 0)
    if table == STORAGE_TABLE and blobs is not None:
        await _export_files(db, blobs, archive, number, ts)
    progress(f"export {table}", count, count)
    return count


async def _export_files(
    db: Database, blobs: BlobStore, archive: zipfile.ZipFile, number: int, ts: int
) -> None:
    async for stored in db.iter_documents(number, ts):
        row = loads_stored(stored.value)
        assert isinstance(row, dict)
        data = await blobs.get(str(row.get("blobKey")))
        if data is not None:
            archive.writestr(f"{STORAGE_TABLE}/{row['_id']!s}", data)


# -- import of a whole snapshot ---------------------------------------------------------------


async def import_archive(
    db: Database,
    blobs: BlobStore | None,
    path: Path,
    *,
    replace: bool = False,
    progress: Progress = _quiet,
) -> ImportSummary:
    """Import a snapshot ZIP: every table keeps its ids and creation times. Tables that already
    hold documents are refused unless `replace`. Nothing is written unless everything fits."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"{path}: not a readable ZIP snapshot ({exc})") from None
    with archive:
        numbers = _table_numbers(archive)
        tables = {
            name: list(_parse_jsonl(archive, f"{name}/documents.jsonl", encoded=True))
            for name in numbers
        }
        files = _stored_files(archive, tables.get(STORAGE_TABLE, []))
    for name, number in numbers.items():
        await db.catalog.ensure_table(name, allow_system=name.startswith("_"), number=number)
    written_keys = await _put_files(blobs, files)
    try:
        summary = await _commit(db, tables, replace=replace, restore=True, progress=progress)
    except BaseException:
        for key in written_keys:
            await blobs.delete(key)  # type: ignore[union-attr]
        raise
    summary.files = len(written_keys)
    return summary


def _table_numbers(archive: zipfile.ZipFile) -> dict[str, int]:
    if TABLES_FILE not in archive.namelist():
        raise ArchiveError(f"the snapshot has no {TABLES_FILE}: it was not made by export")
    numbers: dict[str, int] = {}
    for line_no, row in _parse_jsonl(archive, TABLES_FILE, encoded=False):
        if not isinstance(row.get("name"), str) or not isinstance(row.get("number"), int | float):
            raise ArchiveError(f"{TABLES_FILE}:{line_no}: expected {{name, number}}")
        numbers[row["name"]] = int(row["number"])
    for name in numbers:
        if f"{name}/documents.jsonl" not in archive.namelist():
            raise ArchiveError(
                f"the snapshot lists table {name!r} but has no {name}/documents.jsonl"
            )
    return numbers


def _stored_files(
    archive: zipfile.ZipFile, rows: list[tuple[int, dict[str, Any]]]
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for line_no, row in rows:
        name = f"{STORAGE_TABLE}/{row.get('_id')}"
        if name not in archive.namelist():
            raise ArchiveError(f"{STORAGE_TABLE}/documents.jsonl:{line_no}: no bytes for {name}")
        files[str(row.get("blobKey"))] = archive.read(name)
    return files


async def _put_files(blobs: BlobStore | None, files: dict[str, bytes]) -> list[str]:
    if files and blobs is None:
        raise ArchiveError("the snapshot holds files but this server has no file storage")
    written: list[str] = []
    for key, data in files.items():
        await blobs.put(key, data)  # type: ignore[union-attr]
        written.append(key)
    return written


# -- import of one table ----------------------------------------------------------------------


async def import_table(
    db: Database,
    table: str,
    path: Path,
    *,
    format: str | None = None,
    replace: bool = False,
    progress: Progress = _quiet,
) -> ImportSummary:
    """Import one table from JSONL (one object per line) or CSV (header row). Documents that
    carry an `_id` of this table keep it; the others get new ids."""
    kind = format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: {exc.strerror or exc}") from None
    if kind == "csv":
        rows = list(_parse_csv(path.name, data))
    elif kind == "jsonl":
        rows = list(_parse_lines(path.name, data, encoded=True))
    else:
        raise ArchiveError(f"unknown import format {kind!r}: use jsonl or csv")
    await db.catalog.ensure_table(table)
    return await _commit(db, {table: rows}, replace=replace, restore=False, progress=progress)


def _parse_csv(label: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ArchiveError(f"{label}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        line_no = reader.line_num
        if None in row:
            raise ArchiveError(f"{label}:{line_no}: more cells than header columns")
        yield (
            line_no,
            {key: _csv_value(cell) for key, cell in row.items() if cell not in ("", None)},
        )


def _csv_value(cell: str) -> Value:
    """CSV cells carry no types: numbers become float64, true/false booleans, else strings."""
    if cell in ("true", "false"):
        return cell == "true"
    try:
        return float(cell)
    except ValueError:
        return cell


# -- parsing and the one transaction ----------------------------------------------------------


def _parse_jsonl(
    archive: zipfile.ZipFile, name: str, *, encoded: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    return _parse_lines(name, archive.read(name), encoded=encoded)


def _parse_lines(label: str, data: bytes, *, encoded: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
            value = decode_value(raw) if encoded else raw
        except (orjson.JSONDecodeError, ReactiveError) as exc:
            raise ArchiveError(f"{label}:{line_no}: {exc}") from None
        if not isinstance(value, dict):
            raise ArchiveError(f"{label}:{line_no}: expected a JSON object")
        yield line_no, value


async def _commit(
    db: Database,
    tables: dict[str, list[tuple[int, dict[str, Any]]]],
    *,
    replace: bool,
    restore: bool,
    progress: Progress,
) -> ImportSummary:
    total = sum(len(rows) for rows in tables.values())

    async def write(tx: Transaction) -> ImportSummary:
        tx.limits = TransactionLimits.unlimited()  # an import is one bulk transaction
        summary = ImportSummary()
        done = 0
        for table, rows in tables.items():
            await _make_room(tx, table, replace)
            for line_no, doc in rows:
                await _write_one(tx, table, line_no, doc, restore)
                done += 1
                if done % 1000 == 0:
                    progress("import", done, total)
            summary.documents[table] = len(rows)
        return summary

    result = await db.run_mutation(write)
    progress("import", total, total)
    return result.value


async def _make_room(tx: Transaction, table: str, replace: bool) -> None:
    existing = await tx.query(table).take(1)
    if existing and not replace:
        raise ArchiveError(
            f"table {table!r} already has documents: import with replace to overwrite it"
        )
    if replace:
        async for doc in tx.query(table):
            await tx.delete(str(doc["_id"]), system=table.startswith("_"))


async def _write_one(
    tx: Transaction, table: str, line_no: int, doc: dict[str, Any], restore: bool
) -> None:
    label = f"{table}:{line_no}" if restore else f"line {line_no}"
    try:
        if restore or (isinstance(doc.get("_id"), str) and tx.normalize_id(table, doc["_id"])):
            if not isinstance(doc.get("_creationTime"), float):
                doc = {**doc, "_creationTime": tx._creation_time()}
            await tx.restore(table, doc)
        else:
            fields = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
            await tx.insert(table, fields, system=table.startswith("_"))
    except ReactiveError as exc:
        raise ArchiveError(f"{label}: {exc}") from None
