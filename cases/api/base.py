"""What every API view shares: one error body, the documented error responses, throttling, and the
case-scoped base class (``visible``/``case_and_role`` from :mod:`cases.api.scope`, checked before the
view runs)."""

from __future__ import annotations

from django.conf import settings
from django.db import DataError
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from ..workspace.actions import ActionError
from .scope import case_and_role

# --- errors ----------------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every error: ``detail`` (one readable line), ``code``, and for invalid input ``errors``, a map from
    the field (``field.sub`` or ``field.0`` for nested ones; ``non_field_errors`` otherwise) to messages."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


def _flatten(data, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and data and all(isinstance(item, str) for item in data):
        out[prefix or "non_field_errors"] = [str(item) for item in data]
    elif isinstance(data, list):
        for n, value in enumerate(data):
            if value:
                out.update(_flatten(value, f"{prefix}.{n}" if prefix else str(n)))
    else:
        out[prefix or "non_field_errors"] = [str(data)]
    return out


def _code(data) -> str:
    if hasattr(data, "code"):
        return str(data.code)
    if isinstance(data, dict):
        return next((c for c in map(_code, data.values()) if c), "")
    if isinstance(data, list):
        return next((c for c in map(_code, data) if c), "")
    return ""


def exception_handler(exc, context):
    """DRF's handler, then one body shape for every error (``ActionError`` from the domain is a 400)."""
    if isinstance(exc, ActionError):
        exc = exceptions.ValidationError({"non_field_errors": [str(exc)]})
    elif isinstance(exc, DataError):  # a value the database cannot store or compare: the client's input
        exc = exceptions.ValidationError({"non_field_errors": ["A value is out of range or not storable."]})
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")  # not "No Finding matches the given query."
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(data)
        lines = [
            f"{field}: {' '.join(messages)}" if field != "non_field_errors" else " ".join(messages)
            for field, messages in errors.items()
        ]
        response.data = {
            "detail": "; ".join(lines) or "Invalid input.",
            "code": _code(data) or "invalid",
            "errors": errors,
        }
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"detail": str(data["detail"]), "code": _code(data["detail"]) or "error"}
    else:
        response.data = {"detail": str(data), "code": "error"}
    return response


# --- schema ----------------------------------------------------------------------------------------------

ERRORS = {
    "400": "Invalid input (see `errors`).",
    "401": "Not authenticated: send `Authorization: Token …` or a session cookie.",
    "404": "Not found, or on a case you are not a member of.",
    "429": "Throttled: retry after the `Retry-After` header.",
}
WRITE_ERRORS = {
    "403": "Your role on the case does not allow this (or the CSRF check failed for a session).",
    "415": "Unsupported media type.",
}


class ApiSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses every operation can give (one body shape)."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = dict(ERRORS)
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            codes.update(WRITE_ERRORS)
        for code, description in codes.items():
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = description
                responses[code] = body
        return responses


# --- throttling ------------------------------------------------------------------------------------------


class ScopedUserThrottle(UserRateThrottle):
    """A per-user rate for one expensive family, from ``DEFAULT_THROTTLE_RATES[scope]`` or a default."""

    default_rate = "600/min"

    def get_rate(self):
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope, self.default_rate)


class SearchThrottle(ScopedUserThrottle):
    scope = "search"
    default_rate = "600/min"


class UploadThrottle(ScopedUserThrottle):
    scope = "upload"
    default_rate = "120/min"


# --- views -----------------------------------------------------------------------------------------------


class ApiViewSet(viewsets.GenericViewSet):
    """The base of every API view: the shared error body and schema; default auth, permission and
    throttle classes from the settings (token + session, authenticated, anon + user rates)."""

    schema = ApiSchema()

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL refuses NUL in text; serializer fields reject it already, so do the URL and query too.
        for name, value in [*kwargs.items(), *request.query_params.lists()]:
            values = value if isinstance(value, list) else [value]
            if any("\x00" in str(v) for v in values):
                raise exceptions.ValidationError(
                    {str(name).replace("\x00", ""): ["NUL characters are not allowed."]}
                )


class CaseScopedViewSet(ApiViewSet):
    """Views under ``/api/cases/{case_id}/``: the case and the caller's role are looked up (404 for a
    non-member) before anything else; ``write_actions`` need a writer, ``lead_actions`` the lead."""

    write_actions: frozenset[str] = frozenset({"create", "update", "partial_update", "destroy"})
    lead_actions: frozenset[str] = frozenset()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.case, self.role = case_and_role(
            request.user,
            kwargs.get("case_id"),
            write=self.action in self.write_actions,
            lead=self.action in self.lead_actions,
        )

    @property
    def schema_only(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


@csrf_exempt  # nothing to protect, and a POST to a wrong URL is a 404 like a GET, not a CSRF page
def not_found(request, *args, **kwargs):
    """Any other URL under /api/: the API's 404 body, not the HTML page."""
    from django.http import JsonResponse

    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
