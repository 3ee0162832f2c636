from django.contrib import admin

from .models import AuditEvent, Case, CaseMembership, CaseTemplate, CustodyEvent, Evidence


class MembershipInline(admin.TabularInline):
    model = CaseMembership
    extra = 0


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["key", "title", "severity", "status", "lead", "created_at"]
    list_filter = ["status", "severity"]
    search_fields = ["key", "title"]
    inlines = [MembershipInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Custody and audit records are immutable, in the admin too."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ["original_name", "case", "sha256", "size", "uploaded_by", "uploaded_at"]
    search_fields = ["sha256", "original_name"]


@admin.register(CustodyEvent)
class CustodyEventAdmin(ReadOnlyAdmin):
    list_display = ["evidence", "action", "actor", "at"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["pk", "case", "actor", "action", "at", "hash"]


@admin.register(CaseTemplate)
class CaseTemplateAdmin(admin.ModelAdmin):
    """Admin-managed case templates, offered next to the built-in ones (cases/playbooks/*.yaml)."""

    list_display = ["name", "slug", "severity"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "checklists":
            from .playbooks import checklist_templates

            field.help_text = "A JSON list of checklist template slugs: " + ", ".join(checklist_templates())
        return field
