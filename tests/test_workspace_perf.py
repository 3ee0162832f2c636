"""Speed: with 10,000 findings and 50,000 file records on one case, the case page, the findings tab and
the layer browser cost a constant number of SQL queries (and stay fast)."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases.demo import build_demo_case
from scanner.models import FileRecord, Finding, Image

pytestmark = pytest.mark.django_db

# Generous wall-clock bound for a shared CI machine; benchmarks/case_page.py prints the real figures.
SLOW = 2.0


@pytest.fixture
def big(alice):
    return build_demo_case(alice, findings=10_000, files=50_000, seed=11)


@pytest.fixture
def small(alice):
    return build_demo_case(alice, findings=20, files=200, seed=12, title="small")


def _urls(case):
    image = Image.objects.get(scan__evidence__case=case)
    finding = Finding.objects.filter(case=case).first()
    return {
        "case page": reverse("cases:detail", args=[case.pk]),
        "findings": reverse("cases:findings", args=[case.pk]),
        "findings filtered": reverse("cases:findings", args=[case.pk])
        + "?severity=high&status=open&sort=-path&page=3",
        "finding": reverse("cases:finding", args=[case.pk, finding.pk]),
        "image tab": reverse("cases:image_detail", args=[case.pk, image.pk]),
        "browser /": reverse("cases:image_tree", args=[case.pk, image.pk]) + "?view=merged&path=/",
        "browser layer 1 /usr/share/doc": reverse("cases:image_tree", args=[case.pk, image.pk])
        + "?view=layer&layer=1&path=/usr/share/doc",
        "graveyard": reverse("cases:graveyard", args=[case.pk, image.pk]),
        "timeline": reverse("cases:timeline", args=[case.pk]),
        "checklists": reverse("cases:checklists", args=[case.pk]),
    }


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, HTTP_HX_REQUEST="true" if "tree" in url else "").status_code == 200
    return len(ctx.captured_queries)


def test_query_counts_do_not_grow_with_rows(client, alice, big, small, django_assert_max_num_queries):
    client.force_login(alice)
    assert Finding.objects.filter(case=big).count() == 10_000
    assert FileRecord.objects.filter(image__scan__evidence__case=big).count() == 50_000
    small_counts = {name: _queries(client, url) for name, url in _urls(small).items()}
    for name, url in _urls(big).items():
        with django_assert_max_num_queries(small_counts[name]):
            client.get(url, HTTP_HX_REQUEST="true" if "tree" in url else "")
    # and the absolute numbers stay small
    assert max(small_counts.values()) <= 20, small_counts


def test_case_page_and_findings_tab_are_fast(client, alice, big, django_assert_max_num_queries):
    client.force_login(alice)
    urls = _urls(big)
    for name in ("case page", "findings", "findings filtered", "browser /"):
        client.get(urls[name], HTTP_HX_REQUEST="true" if "tree" in urls[name] else "")  # warm up
        started = time.perf_counter()
        with django_assert_max_num_queries(20):
            client.get(urls[name], HTTP_HX_REQUEST="true" if "tree" in urls[name] else "")
        elapsed = time.perf_counter() - started
        assert elapsed < SLOW, (name, elapsed)
