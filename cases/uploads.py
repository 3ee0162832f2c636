"""Streaming intake: hash and count evidence bytes while they arrive, never holding a file in memory."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler


class UploadTooLarge(Exception):
    """The request body exceeds LOWERDIR_MAX_UPLOAD_BYTES; answered with 413 by the middleware."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Upload exceeds the limit of {limit:,} bytes (LOWERDIR_MAX_UPLOAD_BYTES)")
        self.limit = limit


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Write each uploaded file to a temporary file beside the evidence store, hashing it on the way.

    The finished file carries ``sha256`` and ``size``; an interrupted upload leaves only the temporary
    file, which is deleted when the request ends.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        limit = settings.LOWERDIR_MAX_UPLOAD_BYTES
        if content_length and content_length > limit:
            raise UploadTooLarge(limit)
        self.received = 0
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.digest = hashlib.sha256()
        self.file.sha256 = ""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > settings.LOWERDIR_MAX_UPLOAD_BYTES:
            raise UploadTooLarge(settings.LOWERDIR_MAX_UPLOAD_BYTES)
        self.digest.update(raw_data)
        self.file.write(raw_data)

    def file_complete(self, file_size: int):
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self.digest.hexdigest()
        return uploaded
