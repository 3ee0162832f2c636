from django.contrib import admin

from .models import Finding, ScanRun


@admin.register(ScanRun)
class ScanRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "evidence", "status", "progress", "attempt", "queued_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ScanRun._meta.fields]


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ["rule_id", "severity", "title", "path", "status", "case"]
    list_filter = ["severity", "rule_id", "status"]
