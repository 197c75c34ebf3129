"""Documents: list, get (with versions), upload (admins), delete (admins), re-sync a folder.

An upload is kept as ``<workspace>/uploads/<collection>/<file name>`` (the document's
source), written under a hidden temporary name and renamed into place, then ingested like
any file: each document in its own transaction, so a server killed mid-upload leaves the
store as it was (the next start removes the half-written files). Each file succeeds or
fails on its own: an unsupported or corrupt file is reported and the others are stored;
a failed replacement puts the previous file back.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from ragtune.errors import AccessDenied, InputError, NotFound
from ragtune.ingest.ignore import type_of
from ragtune.server.auth import Admin, Caller, Identity
from ragtune.server.schemas import (
    DeleteResponse,
    DocumentOut,
    FileResult,
    SyncRequest,
    SyncResponse,
    UploadResponse,
    VersionOut,
    error_responses,
)
from ragtune.types import DocumentInfo, file_sha256

router = APIRouter(prefix="/api/documents", tags=["documents"])
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+,-]{0,199}")
_COLLECTION = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_hashes: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256


def file_state(info: DocumentInfo) -> str:
    """Whether the document's source file still holds what was ingested."""
    path, digest = info.metadata.get("path") or info.source, info.metadata.get("file_sha256")
    if not digest:
        return "unknown"
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _hashes:
        if len(_hashes) > 10_000:
            _hashes.clear()
        _hashes[key] = file_sha256(path)
    return "current" if _hashes[key] == digest else "changed"


def document_out(info: DocumentInfo, versions: list[dict] | None = None) -> DocumentOut:
    return DocumentOut(
        id=info.id, source=info.source, title=info.title, collection=info.collection,
        groups=list(info.groups), version=info.version, chunks=info.chunks,
        created_at=info.created_at, updated_at=info.updated_at,
        age_days=round((time.time() - info.updated_at) / 86400, 3), file=file_state(info),
        versions=None if versions is None else [VersionOut(**v) for v in versions])


def _readable(request: Request, who: Identity, doc_id: str) -> DocumentInfo:
    ws = request.app.state.ragtune.ws
    info = ws.store.get_document(doc_id)
    if info is None or not who.principal.can_read(info.groups):
        raise NotFound(f"no document {doc_id!r}")  # the same whether hidden or absent
    return info


@router.get("", response_model=list[DocumentOut], responses=error_responses(401))
def list_documents(request: Request, who: Caller) -> list[DocumentOut]:
    """The documents this caller may read (admins: all), with version and freshness."""
    ws = request.app.state.ragtune.ws
    return [document_out(d) for d in ws.documents(who.principal)]


@router.get("/{doc_id}", response_model=DocumentOut, responses=error_responses(401, 404))
def get_document(doc_id: str, request: Request,
                 who: Caller) -> DocumentOut:
    """One document with its version history."""
    info = _readable(request, who, doc_id)
    return document_out(info, request.app.state.ragtune.ws.store.document_versions(info.id))


@router.delete("/{doc_id}", response_model=DeleteResponse,
               responses=error_responses(401, 403, 404))
def delete_document(doc_id: str, request: Request,
                    who: Admin) -> DeleteResponse:
    """Delete a document: text, vectors, index entries, its quotes in the trace log, and
    its uploaded file."""
    state = request.app.state.ragtune
    info = _readable(request, who, doc_id)
    out = document_out(info)
    state.ws.remove(info.id)
    source = Path(info.source)
    if source.is_relative_to(state.uploads.resolve()):
        source.unlink(missing_ok=True)
    return DeleteResponse(deleted=out)


def _save(upload: UploadFile, folder: Path) -> tuple[Path, Path | None]:
    """Write ``upload`` into ``folder`` under its own name, atomically; returns the path and
    the previous file's backup (None when it is new)."""
    name = Path(upload.filename or "").name
    if not _NAME.fullmatch(name):
        raise InputError(upload.filename or "(no name)", "file names start with a letter or "
                         "digit and use letters, digits, spaces and . _ ( ) + , - only")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    partial = folder / f".partial-{uuid.uuid4().hex}"
    with open(partial, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    backup = None
    if final.exists():
        backup = folder / f".partial-{uuid.uuid4().hex}.previous"
        os.replace(final, backup)
    os.replace(partial, final)
    return final, backup


@router.post("", response_model=UploadResponse,
             responses=error_responses(400, 401, 403, 413, 422))
async def upload(request: Request, who: Admin,
                 files: Annotated[list[UploadFile], File(description="one or more files",
                                                         min_length=1)],
                 collection: Annotated[str, Form(pattern=_COLLECTION)] = "default",
                 groups: Annotated[str, Form(max_length=1000,
                                             description="comma-separated; empty = public")] = "",
                 ) -> UploadResponse:
    """Store uploaded files in ``collection``, readable by ``groups`` (empty: everyone).
    Every file gets its own result; bad files do not stop the others."""
    state = request.app.state.ragtune
    folder = state.uploads / collection
    group_list = sorted({g.strip() for g in groups.split(",") if g.strip()})
    results: dict[str, FileResult] = {}
    saved: list[tuple[str, Path, Path | None]] = []
    for f in files:
        label = f.filename or "(no name)"
        if label in results or any(label == s[0] for s in saved):
            results[label + " (again)"] = FileResult(file=label, status="failed",
                                                     error="the same file name twice in one upload")
            continue
        try:
            path, backup = await asyncio.to_thread(_save, f, folder)
            saved.append((label, path, backup))
        except InputError as e:
            results[label] = FileResult(file=label, status="failed", error=e.problem)
    if saved:
        report = await asyncio.to_thread(state.ws.ingest, [p for _, p, _ in saved],
                                         collection=collection, groups=group_list)
        failed = {Path(p).resolve(): e for p, e in report.failed}
        status_of = {**{s: "added" for s in report.added}, **{s: "updated" for s in report.updated},
                     **{s: "unchanged" for s in report.unchanged}}
        for label, path, backup in saved:
            source = str(path.resolve())
            if source in failed or source not in status_of:
                if backup is not None:
                    os.replace(backup, path)  # the stored document keeps its file
                else:
                    path.unlink(missing_ok=True)
                problem = failed.get(path.resolve()) or (
                    f"unsupported file type {type_of(path)}: not a document ragtune reads"
                    if report.left_out.skipped.get(type_of(path)) else "not stored")
                problem = problem.replace(str(path), label)
                results[label] = FileResult(file=label, status="failed", error=problem)
                continue
            if backup is not None:
                backup.unlink(missing_ok=True)
            info = state.ws.store.get_document(source)
            results[label] = FileResult(file=label, status=status_of[source],
                                        document=info.id if info else None)
    out = [results[f.filename or "(no name)"] for f in files
           if (f.filename or "(no name)") in results]
    failed_n = sum(r.status == "failed" for r in out)
    return UploadResponse(files=out, stored=len(out) - failed_n, failed=failed_n)


@router.post("/sync", response_model=SyncResponse,
             responses=error_responses(400, 401, 403, 422))
async def sync_folder(body: SyncRequest, request: Request,
                      who: Admin) -> SyncResponse:
    """Re-ingest a folder the server can read: new and changed files in, vanished ones out."""
    state = request.app.state.ragtune
    roots = [Path(r).expanduser().resolve() for r in state.ws.settings.server.sync_roots]
    try:
        folder = Path(body.path).expanduser()
        inside = not roots or any(folder.resolve().is_relative_to(r) for r in roots)
        is_dir = inside and folder.is_dir()
    except (ValueError, OSError) as e:  # a NUL byte, an unencodable name, a loop...
        raise InputError(repr(body.path), f"not a usable path on the server: {e}") from None
    if not inside:
        raise AccessDenied(f"{body.path}: not under server.sync_roots")
    if not is_dir:
        raise InputError(body.path, "no such folder on the server")
    report = await asyncio.to_thread(state.ws.ingest, [folder], collection=body.collection,
                                     groups=body.groups, sync=True)
    data = report.to_dict()
    return SyncResponse(added=report.added, updated=report.updated, unchanged=report.unchanged,
                        removed=report.removed, failed=data["failed"], seconds=report.seconds)
