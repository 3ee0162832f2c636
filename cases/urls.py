from django.urls import path

from . import views

app_name = "cases"

urlpatterns = [
    path("", views.case_list, name="list"),
    path("<int:case_id>/", views.case_detail, name="detail"),
    path("<int:case_id>/images/", views.case_images, name="images"),
    path("<int:case_id>/evidence/", views.evidence_upload, name="upload"),
]
