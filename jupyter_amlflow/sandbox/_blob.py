"""Azure Blob Storage stand-in: the few Blob REST calls azure-storage-blob makes for artifacts.

Blob URLs are path-style on the sandbox's own HTTPS listener, because that is the form the
unmodified SDK and the azureml-mlflow plugin accept for a loopback host::

    https://127.0.0.1:PORT/<account>.blob.<storage suffix>/<container>/<blob path>?sv=..&sig=..

The SAS is the only authorisation: an HMAC over permissions, expiry and the blob's path, keyed
per sandbox; every signature handed out is registered as a secret. A container is a directory
"mounted" by whoever issues its URLs (the run-history and artifact APIs mount a run's or a
model's artifact directory of the backing mlflow server, so mlflow sees what was uploaded).
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import hmac
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from ._http import HttpError, Request, Response, Route, route
from ._model import Directory

SAS_VERSION = "2021-08-06"
SAS_LIFETIME = 8 * 3600.0
_EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CONTAINER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_BLOCK_RE = re.compile(r"<(?:Latest|Committed|Uncommitted)>([^<]+)</")


class StorageError(HttpError):
    """An error shaped as Blob Storage sends it (XML body and ``x-ms-error-code``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, {"code": code, "message": message})
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}</Message></Error>"
        )
        self.response = Response(status, body.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code})


def safe_relative(path: str) -> str | None:
    """``path`` as a clean relative POSIX path, or None if it could leave its directory."""
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        return None
    return "/".join(parts)


class BlobStore:
    """SAS-signed blob URLs over directories, and the Blob REST endpoint that serves them."""

    def __init__(self, directory: Directory, staging: Path, storage_suffix: str) -> None:
        self._directory = directory
        self._staging = staging
        self._suffix = storage_suffix
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._mounts: dict[tuple[str, str], Path] = {}

    def routes(self) -> list[Route]:
        """The Blob REST routes (no bearer token: the SAS authorises)."""
        pattern = (
            r"/(?P<account>[a-z0-9]{3,24})\.blob\." + re.escape(self._suffix) + r"/(?P<container>[^/]+)/(?P<blob>.+)"
        )
        return [
            route("PUT", pattern, "blob", self.put),
            route("GET", pattern, "blob", self.get),
            route("HEAD", pattern, "blob", self.get),
        ]

    # -- issuing -------------------------------------------------------------------------------
    def mount(self, account: str, container: str, directory: Path) -> None:
        """Serve ``directory`` as ``container`` of ``account`` (remounting the same is a no-op)."""
        if not _CONTAINER_RE.fullmatch(container):
            raise ValueError(f"invalid container name {container!r}")
        with self._lock:
            self._mounts[(account.lower(), container)] = directory

    def url(self, base_url: str, account: str, container: str, blob: str, permissions: str) -> str:
        """A SAS URL for one blob of a mounted container; the signature is registered as a secret.

        ``permissions`` is the SAS ``sp``: ``r`` to read, ``rcw`` to upload too. The caller picks it
        from what the requester was authorised to do.
        """
        expiry = time.strftime(_EXPIRY_FORMAT, time.gmtime(time.time() + SAS_LIFETIME))
        sig = self._directory.remember_secret(self._sign(permissions, expiry, account, container, blob))
        # In a URL the signature is percent-encoded: that spelling must not leak either.
        self._directory.remember_secret(quote(sig, safe=""))
        query = urlencode({"sv": SAS_VERSION, "sr": "b", "sp": permissions, "se": expiry, "sig": sig})
        return f"{base_url}/{account}.blob.{self._suffix}/{container}/{quote(blob, safe='/')}?{query}"

    def _sign(self, permissions: str, expiry: str, account: str, container: str, blob: str) -> str:
        text = "\n".join((permissions, expiry, f"/{account.lower()}/{container}/{blob}", SAS_VERSION, "b"))
        return base64.b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()).decode()

    # -- checks --------------------------------------------------------------------------------
    def _authorize(self, req: Request, needs: str) -> tuple[Path, str]:
        """Check the SAS; return the blob's file and its (decoded) name."""
        account, container = req.params["account"].lower(), req.params["container"]
        blob = unquote(req.params["blob"])
        q = req.query
        sig, expiry, permissions = q.get("sig", ""), q.get("se", ""), q.get("sp", "")
        denied = "Server failed to authenticate the request. Make sure the value of the SAS is formed correctly."
        if not sig or q.get("sv") != SAS_VERSION or q.get("sr") != "b":
            raise StorageError(403, "AuthenticationFailed", denied)
        expected = self._sign(permissions, expiry, account, container, blob)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise StorageError(403, "AuthenticationFailed", denied + " Signature did not match.")
        try:
            expires = calendar.timegm(time.strptime(expiry, _EXPIRY_FORMAT))
        except ValueError as exc:
            raise StorageError(403, "AuthenticationFailed", denied) from exc
        if expires < time.time():
            raise StorageError(403, "AuthenticationFailed", denied + f" Signed expiry time [{expiry}] has passed.")
        if not any(p in permissions for p in needs):
            raise StorageError(
                403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation."
            )
        with self._lock:
            root = self._mounts.get((account, container))
        if root is None:
            raise StorageError(404, "ContainerNotFound", "The specified container does not exist.")
        relative = safe_relative(blob)
        if relative is None:
            raise StorageError(400, "InvalidResourceName", "The specified resource name contains invalid characters.")
        return root / relative, blob

    @staticmethod
    def _properties(path: Path) -> dict[str, str]:
        st = path.stat()
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        return {
            "ETag": f'"0x{st.st_mtime_ns:X}{st.st_size:X}"',
            "Last-Modified": modified,
            "x-ms-creation-time": modified,
            "x-ms-blob-type": "BlockBlob",
            "Accept-Ranges": "bytes",
            "x-ms-version": SAS_VERSION,
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
            "x-ms-server-encrypted": "true",
        }

    # -- handlers ------------------------------------------------------------------------------
    def put(self, req: Request) -> Response:
        path, blob = self._authorize(req, "cw")
        comp = req.query.get("comp")
        if comp == "block":
            block_id = req.query.get("blockid", "")
            if not block_id:
                raise StorageError(400, "InvalidQueryParameterValue", "The blockid parameter is missing.")
            staged = self._staged(req, blob)
            staged.mkdir(parents=True, exist_ok=True)
            (staged / hashlib.sha256(block_id.encode()).hexdigest()).write_bytes(req.body)
            return Response(201, b"", {"x-ms-request-server-encrypted": "true", "x-ms-version": SAS_VERSION})
        if comp == "blocklist":
            staged = self._staged(req, blob)
            ids = _BLOCK_RE.findall(req.body.decode("utf-8", "replace"))
            parts = [staged / hashlib.sha256(i.strip().encode()).hexdigest() for i in ids]
            if not all(p.is_file() for p in parts):
                raise StorageError(400, "InvalidBlockList", "The specified block list is invalid.")
            data = b"".join(p.read_bytes() for p in parts)
            headers = self._commit(req, path, data)
            shutil.rmtree(staged, ignore_errors=True)
            return Response(201, b"", headers)
        if comp is not None:
            raise StorageError(400, "InvalidQueryParameterValue", f"The sandbox does not serve comp={comp}.")
        if (req.header("x-ms-blob-type") or "").lower() != "blockblob":
            raise StorageError(
                400, "MissingRequiredHeader", "An HTTP header that's mandatory is missing: x-ms-blob-type."
            )
        headers = self._commit(req, path, req.body)
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(req.body).digest()).decode()
        return Response(201, b"", headers)

    def _staged(self, req: Request, blob: str) -> Path:
        key = f"{req.params['account'].lower()}/{req.params['container']}/{blob}"
        return self._staging / hashlib.sha256(key.encode()).hexdigest()

    def _commit(self, req: Request, path: Path, data: bytes) -> dict[str, str]:
        self._staging.mkdir(parents=True, exist_ok=True)
        temp = self._staging / f"upload-{uuid.uuid4().hex}"
        temp.write_bytes(data)
        # Check and replace under one lock, so "If-None-Match: *" means create-only under races too.
        with self._lock:
            if req.header("if-none-match") == "*" and path.exists():
                temp.unlink()
                raise StorageError(409, "BlobAlreadyExists", "The specified blob already exists.")
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, path)
        props = self._properties(path)
        return {
            "ETag": props["ETag"],
            "Last-Modified": props["Last-Modified"],
            "x-ms-request-server-encrypted": "true",
            "x-ms-version": SAS_VERSION,
        }

    def get(self, req: Request) -> Response:
        path, _ = self._authorize(req, "r")
        if not path.is_file():
            raise StorageError(404, "BlobNotFound", "The specified blob does not exist.")
        headers = self._properties(path)
        if_match = req.header("if-match")
        if if_match and if_match != headers["ETag"]:
            raise StorageError(
                412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met."
            )
        size = path.stat().st_size
        headers["Content-Type"] = "application/octet-stream"
        wanted = req.header("x-ms-range") or req.header("range")
        if req.method == "HEAD":
            headers["Content-Length"] = str(size)
            return Response(200, b"", headers)
        if not wanted:
            return Response(200, path.read_bytes(), headers)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        if match is None:
            raise StorageError(400, "InvalidRange", "The range specified is invalid.")
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        if start >= size or end < start:
            err = StorageError(
                416, "InvalidRange", "The range specified is invalid for the current size of the resource."
            )
            err.response.headers["Content-Range"] = f"bytes */{size}"
            raise err
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start + 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(206, data, headers)
