from rest_framework.routers import DefaultRouter

from .views import CaseViewSet, EvidenceViewSet

router = DefaultRouter()
router.register("cases", CaseViewSet, basename="case")
router.register("evidence", EvidenceViewSet, basename="evidence")

urlpatterns = router.urls
