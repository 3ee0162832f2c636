"""``POST /api/cases/{id}/evidence/`` with ``{"reference": "host/repo:tag"}``: queue a registry pull.

The reference and its host are checked now (syntax, allow-list, public or insecure-listed address), so a
bad reference is a 400 at once; the pull itself runs in a worker (``scanner.pull.pull_reference``), which
stores the archive as evidence and queues its scan. The answer is 202 with the normalised reference.
"""

from __future__ import annotations

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.response import Response

from scanner.engine.model import ScanError


class EvidenceReferenceSerializer(serializers.Serializer):
    reference = serializers.CharField(max_length=512, help_text="host[:port]/repo[:tag][@sha256:...]")
    description = serializers.CharField(required=False, allow_blank=True, default="", write_only=True)
    status = serializers.CharField(read_only=True)


def queue_pull(request, case) -> Response:
    from scanner.pull import check_reference, pull_reference

    data = EvidenceReferenceSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        reference = check_reference(data.validated_data["reference"])
    except ScanError as exc:
        raise serializers.ValidationError({"reference": [str(exc)]}) from None
    case_id, user_id, description = case.pk, request.user.pk, data.validated_data["description"]
    transaction.on_commit(lambda: pull_reference.delay(case_id, reference, user_id, description))
    return Response({"reference": reference, "status": "queued"}, status=status.HTTP_202_ACCEPTED)
