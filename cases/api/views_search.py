"""``GET /api/search/``: the cross-case pivot (:mod:`cases.search`) — file records, findings and evidence
matching a SHA-256, a path or a rule id, in every case the caller is a member of and in no other."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import search
from .base import ApiViewSet, SearchThrottle
from .pagination import Pagination
from .serializers import SearchEvidenceSerializer, SearchFileSerializer, SearchFindingSerializer

PIVOT_PARAMETERS = [
    OpenApiParameter(
        "sha256",
        str,
        description="a SHA-256 (64 hex digits, `sha256:` prefix allowed): file "
        "contents, finding hashes and evidence archives",
    ),
    OpenApiParameter("path", str, description="an exact path, e.g. /usr/bin/.hidden_miner"),
    OpenApiParameter("path_prefix", str, description="a path prefix, e.g. /usr/bin/"),
    OpenApiParameter(
        "rule_id", str, description="a rule id, e.g. malware.yara (findings, and the evidence that has them)"
    ),
]
SUMMARY_LIMIT = 20
PAGED = {"pagination_class": Pagination}


def _section(name: str, serializer) -> serializers.Serializer:
    return inline_serializer(
        name=f"Search{name}Section",
        fields={"count": serializers.IntegerField(), "results": serializer(many=True)},
    )


@extend_schema(tags=["search"])
class SearchViewSet(ApiViewSet):
    throttle_classes = [*ApiViewSet.throttle_classes, SearchThrottle]
    pagination_class = None  # the summary is one document; each kind pages on its own (PAGED)

    def _pivot(self) -> search.Pivot:
        return search.Pivot.from_params(self.request.query_params)

    @extend_schema(
        parameters=PIVOT_PARAMETERS,
        responses=inline_serializer(
            name="SearchSummary",
            fields={
                "query": inline_serializer(
                    name="SearchQuery",
                    fields={
                        name: serializers.CharField() for name in ("sha256", "path", "path_prefix", "rule_id")
                    },
                ),
                "files": _section("Files", SearchFileSerializer),
                "findings": _section("Findings", SearchFindingSerializer),
                "evidence": _section("Evidence", SearchEvidenceSerializer),
            },
        ),
    )
    def summary(self, request: Request) -> Response:
        """Counts of each kind and the first 20 of each; the ``files/``, ``findings/`` and ``evidence/``
        sub-resources page through all of them. Combined parameters must all match."""
        pivot = self._pivot()
        user = request.user
        body = {
            "query": {
                "sha256": pivot.sha256,
                "path": pivot.path,
                "path_prefix": pivot.path_prefix,
                "rule_id": pivot.rule_id,
            }
        }
        for name, queryset, serializer in (
            ("files", search.files(user, pivot), SearchFileSerializer),
            ("findings", search.findings(user, pivot), SearchFindingSerializer),
            ("evidence", search.evidence(user, pivot), SearchEvidenceSerializer),
        ):
            body[name] = {
                "count": queryset.count(),
                "results": serializer(queryset[:SUMMARY_LIMIT], many=True).data,
            }
        return Response(body)

    @extend_schema(parameters=PIVOT_PARAMETERS, responses=SearchFileSerializer(many=True))
    @action(detail=False, methods=["get"], serializer_class=SearchFileSerializer, **PAGED)
    def files(self, request: Request) -> Response:
        """File records (any layer, the graveyard included), newest first."""
        page = self.paginate_queryset(search.files(request.user, self._pivot()))
        return self.get_paginated_response(SearchFileSerializer(page, many=True).data)

    @extend_schema(parameters=PIVOT_PARAMETERS, responses=SearchFindingSerializer(many=True))
    @action(detail=False, methods=["get"], serializer_class=SearchFindingSerializer, **PAGED)
    def findings(self, request: Request) -> Response:
        page = self.paginate_queryset(search.findings(request.user, self._pivot()))
        return self.get_paginated_response(SearchFindingSerializer(page, many=True).data)

    @extend_schema(parameters=PIVOT_PARAMETERS, responses=SearchEvidenceSerializer(many=True))
    @action(detail=False, methods=["get"], serializer_class=SearchEvidenceSerializer, **PAGED)
    def evidence(self, request: Request) -> Response:
        """Evidence archives with that SHA-256, and evidence holding a matching file or finding."""
        page = self.paginate_queryset(search.evidence(request.user, self._pivot()))
        return self.get_paginated_response(SearchEvidenceSerializer(page, many=True).data)
