"""Files and vector stores: uploads (multipart), file content, vector stores, their files and file batches.

Everything is processed at once: files are ``processed``, vector stores, their files and batches ``completed``
(the SDK's ``*_and_poll`` helpers return after one request). Data sources (``uri_asset`` blobs of the
"enterprise" file search) become files named after the URI, with no content fetched. File search runs use the
files of the vector stores named in the run's or agent's ``tool_resources`` (see :mod:`.tool_plans`).
"""

from __future__ import annotations

import posixpath
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from .rest import FormFile, Response, Route, ServiceError, page

__all__ = ["FilesAndVectorStores", "ROUTES"]

_VS = r"/vector_stores/(?P<vector_store_id>[^/]+)"
_FILE = r"/files/(?P<file_id>[^/]+)"
_BATCH = _VS + r"/file_batches/(?P<batch_id>[^/]+)"
ROUTES: tuple[Route, ...] = (
    ("POST", r"/files", "file", "upload_file"),
    ("GET", r"/files", "file_list", "list_files"),
    ("GET", _FILE, "file", "get_file"),
    ("DELETE", _FILE, "deletion", "delete_file"),
    ("GET", _FILE + r"/content", "file_content", "get_file_content"),
    ("POST", r"/vector_stores", "vector_store", "create_vector_store"),
    ("GET", r"/vector_stores", "vector_store_list", "list_vector_stores"),
    ("GET", _VS, "vector_store", "get_vector_store"),
    ("POST", _VS, "vector_store", "modify_vector_store"),
    ("DELETE", _VS, "deletion", "delete_vector_store"),
    ("POST", _VS + r"/files", "vector_store_file", "create_vector_store_file"),
    ("GET", _VS + r"/files", "vector_store_file_list", "list_vector_store_files"),
    ("GET", _VS + _FILE, "vector_store_file", "get_vector_store_file"),
    ("DELETE", _VS + _FILE, "deletion", "delete_vector_store_file"),
    ("POST", _VS + r"/file_batches", "vector_store_file_batch", "create_vector_store_file_batch"),
    ("GET", _BATCH, "vector_store_file_batch", "get_vector_store_file_batch"),
    ("POST", _BATCH + r"/cancel", "vector_store_file_batch", "cancel_vector_store_file_batch"),
    ("GET", _BATCH + r"/files", "vector_store_file_list", "list_vector_store_file_batch_files"),
)

_CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def _counts(completed: int, cancelled: int = 0) -> dict[str, int]:
    total = completed + cancelled
    return {"in_progress": 0, "completed": completed, "failed": 0, "cancelled": cancelled, "total": total}


class FilesAndVectorStores:
    """The ``_op_*`` methods of files and vector stores (a part of :class:`~.service.AgentsService`)."""

    # provided by AgentsService
    _now: Callable[[], float]
    _new_id: Callable[[str], str]

    def _reset_files(self) -> None:
        self._files: dict[str, dict[str, Any]] = {}
        self._file_contents: dict[str, bytes] = {}
        self._vector_stores: dict[str, dict[str, Any]] = {}
        self._vector_store_files: dict[str, dict[str, dict[str, Any]]] = {}  # store id -> file id -> wire
        self._file_batches: dict[str, dict[str, Any]] = {}
        self._batch_files: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ public helpers

    def add_file(self, filename: str, content: bytes, purpose: str = "assistants") -> dict[str, Any]:
        """Store a file (as if uploaded); returns its wire object."""
        wire: dict[str, Any] = {
            "object": "file",
            "id": self._new_id("assistant"),
            "bytes": len(content),
            "filename": filename,
            "created_at": int(self._now()),
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        self._files[wire["id"]] = wire
        self._file_contents[wire["id"]] = content
        return wire

    def vector_store_file_names(self, vector_store_ids: list[Any]) -> list[tuple[str, str]]:
        """``(file id, file name)`` of the files in these vector stores (unknown ids are skipped)."""
        found: list[tuple[str, str]] = []
        for store_id in vector_store_ids:
            for file_id in self._vector_store_files.get(store_id, {}):
                name = self._files.get(file_id, {}).get("filename", file_id)
                found.append((file_id, name))
        return found

    # ------------------------------------------------------------------ files

    def _file(self, file_id: str) -> dict[str, Any]:
        if file_id not in self._files:
            raise ServiceError(404, "NotFound", f"No file found with id '{file_id}'.")
        return self._files[file_id]

    def _op_upload_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        upload = body.get("file")
        if isinstance(upload, str):  # sent without a file name: the text is the content
            upload = FormFile("", upload.encode("utf-8"), "application/octet-stream")
        if not isinstance(upload, FormFile):
            raise ServiceError(400, "BadRequest", "A multipart 'file' part is required")
        filename = body.get("filename") if isinstance(body.get("filename"), str) else upload.filename
        return self.add_file(filename or "upload", upload.content, str(body.get("purpose") or "assistants"))

    def _op_list_files(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        purpose = query.get("purpose")
        return {"object": "list", "data": [f for f in self._files.values() if not purpose or f["purpose"] == purpose]}

    def _op_get_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._file(params["file_id"])

    def _op_delete_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._file(params["file_id"])
        del self._files[params["file_id"]]
        self._file_contents.pop(params["file_id"], None)
        return {"id": params["file_id"], "object": "file", "deleted": True}

    def _op_get_file_content(self, params: dict, query: dict, body: dict) -> Response:
        self._file(params["file_id"])
        return Response(200, {"Content-Type": "application/octet-stream"}, self._file_contents[params["file_id"]])

    # ------------------------------------------------------------------ vector stores

    def _vector_store(self, store_id: str) -> dict[str, Any]:
        if store_id not in self._vector_stores:
            raise ServiceError(404, "NotFound", f"No vector store found with id '{store_id}'.")
        return self._vector_stores[store_id]

    def _refresh_store(self, store: dict[str, Any]) -> dict[str, Any]:
        files = self._vector_store_files[store["id"]]
        store["file_counts"] = _counts(len(files))
        store["usage_bytes"] = sum(f["usage_bytes"] for f in files.values())
        store["last_active_at"] = int(self._now())
        return store

    def _attach(self, store_id: str, file_id: Optional[str], data_source: Any, chunking: Any) -> dict[str, Any]:
        """Add a file (or a data source, as a new file) to a vector store; returns the vector-store file."""
        if file_id is None:
            uri = data_source.get("uri") if isinstance(data_source, dict) else None
            if not isinstance(uri, str) or not uri:
                raise ServiceError(400, "BadRequest", "Either 'file_id' or a 'data_source' with a 'uri' is required")
            name = posixpath.basename(urlsplit(uri).path) or "data_source"
            file_id = self.add_file(name, b"", "assistants")["id"]
        size = self._file(file_id)["bytes"]
        wire = {
            "id": file_id,
            "object": "vector_store.file",
            "usage_bytes": size,
            "created_at": int(self._now()),
            "vector_store_id": store_id,
            "status": "completed",
            "last_error": None,
            "chunking_strategy": chunking if isinstance(chunking, dict) and chunking.get("type") else _CHUNKING,
        }
        self._vector_store_files[store_id][file_id] = wire
        return wire

    def _attach_all(self, store_id: str, body: dict[str, Any]) -> list[str]:
        chunking = body.get("chunking_strategy")
        attached = [self._attach(store_id, f, None, chunking)["id"] for f in body.get("file_ids") or []]
        sources = list(body.get("data_sources") or [])
        if isinstance(body.get("store_configuration"), dict):  # enterprise file search: data sources inside
            for configuration in body["store_configuration"].get("data_sources") or []:
                sources.append(configuration)
        attached += [self._attach(store_id, None, s, chunking)["id"] for s in sources]
        return attached

    def _op_create_vector_store(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        now = int(self._now())
        store: dict[str, Any] = {
            "id": self._new_id("vs"),
            "object": "vector_store",
            "created_at": now,
            "name": body.get("name") or "",
            "usage_bytes": 0,
            "file_counts": _counts(0),
            "status": "completed",
            "expires_after": body.get("expires_after"),
            "expires_at": None,
            "last_active_at": now,
            "metadata": body.get("metadata") or {},
        }
        self._vector_stores[store["id"]] = store
        self._vector_store_files[store["id"]] = {}
        self._attach_all(store["id"], body)
        return self._refresh_store(store)

    def _op_list_vector_stores(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return page(list(self._vector_stores.values()), query)

    def _op_get_vector_store(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._vector_store(params["vector_store_id"])

    def _op_modify_vector_store(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        store = self._vector_store(params["vector_store_id"])
        for key in ("name", "expires_after", "metadata"):
            if body.get(key) is not None:
                store[key] = body[key]
        return store

    def _op_delete_vector_store(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        store_id = params["vector_store_id"]
        self._vector_store(store_id)
        del self._vector_stores[store_id]
        del self._vector_store_files[store_id]
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    # ------------------------------------------------------------------ vector-store files and batches

    def _op_create_vector_store_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        store = self._vector_store(params["vector_store_id"])
        wire = self._attach(store["id"], body.get("file_id"), body.get("data_source"), body.get("chunking_strategy"))
        self._refresh_store(store)
        return wire

    def _op_list_vector_store_files(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        store = self._vector_store(params["vector_store_id"])
        files = list(self._vector_store_files[store["id"]].values())
        if query.get("filter"):
            files = [f for f in files if f["status"] == query["filter"]]
        return page(files, query)

    def _vector_store_file(self, params: dict) -> dict[str, Any]:
        files = self._vector_store_files.get(self._vector_store(params["vector_store_id"])["id"], {})
        if params["file_id"] not in files:
            raise ServiceError(404, "NotFound", f"No vector store file found with id '{params['file_id']}'.")
        return files[params["file_id"]]

    def _op_get_vector_store_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._vector_store_file(params)

    def _op_delete_vector_store_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._vector_store_file(params)
        del self._vector_store_files[params["vector_store_id"]][params["file_id"]]
        self._refresh_store(self._vector_stores[params["vector_store_id"]])
        return {"id": params["file_id"], "object": "vector_store.file.deleted", "deleted": True}

    def _batch(self, params: dict) -> dict[str, Any]:
        batch = self._file_batches.get(params["batch_id"])
        if batch is None or batch["vector_store_id"] != params["vector_store_id"]:
            raise ServiceError(404, "NotFound", f"No file batch found with id '{params['batch_id']}'.")
        return batch

    def _op_create_vector_store_file_batch(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        store = self._vector_store(params["vector_store_id"])
        attached = self._attach_all(store["id"], body)
        self._refresh_store(store)
        batch = {
            "id": self._new_id("vsfb"),
            "object": "vector_store.files_batch",
            "created_at": int(self._now()),
            "vector_store_id": store["id"],
            "status": "completed",
            "file_counts": _counts(len(attached)),
        }
        self._file_batches[batch["id"]] = batch
        self._batch_files[batch["id"]] = attached
        return batch

    def _op_get_vector_store_file_batch(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._batch(params)

    def _op_cancel_vector_store_file_batch(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._batch(params)  # already completed: nothing left to cancel, like the service

    def _op_list_vector_store_file_batch_files(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        batch = self._batch(params)
        files = self._vector_store_files.get(batch["vector_store_id"], {})
        return page([files[f] for f in self._batch_files[batch["id"]] if f in files], query)
