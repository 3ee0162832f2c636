from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from .uploads import UploadTooLarge


class UploadLimitMiddleware:
    """Answer oversize uploads with 413: early from Content-Length, or when streaming crosses the limit."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.LOWERDIR_MAX_UPLOAD_BYTES:
            return self.too_large(request, UploadTooLarge(settings.LOWERDIR_MAX_UPLOAD_BYTES))
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UploadTooLarge):
            return self.too_large(request, exception)
        return None

    @staticmethod
    def too_large(request, error: UploadTooLarge) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": str(error)}, status=413)
        return HttpResponse(str(error), status=413, content_type="text/plain; charset=utf-8")
