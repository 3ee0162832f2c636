from django import forms
from django.contrib.auth import get_user_model

from scanner.models import TriageStatus

from .models import Case, CaseStatus, Role, Severity, TimelineKind
from .playbooks import case_templates, checklist_templates
from .workspace.actions import LEAD_FIELDS, NARRATIVE_FIELDS

UTC_HELP = "UTC, e.g. 2026-03-14 09:26:53"


class CaseForm(forms.ModelForm):
    template = forms.ChoiceField(
        required=False, label="Case template", help_text="Presets severity, checklists and timeline headings."
    )

    class Meta:
        model = Case
        fields = ["title", "summary", "severity"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [("", "None: a blank case")] + [
            (spec.key, spec.name) for spec in case_templates()
        ]
        self.fields["severity"].required = False
        self.fields["severity"].choices = [("", "From the template (else medium)")] + list(Severity.choices)
        self.fields["severity"].initial = ""


class CaseFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "key, title or summary", "type": "search"}),
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any status")] + CaseStatus.choices)
    severity = forms.ChoiceField(required=False, choices=[("", "Any severity")] + Severity.choices)
    lead = forms.ChoiceField(required=False)

    def __init__(self, *args, leads=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lead"].choices = [("", "Any lead")] + [(str(pk), name) for pk, name in leads]


class EvidenceForm(forms.Form):
    """Evidence is either an uploaded archive or a registry reference that a worker pulls."""

    file = forms.FileField(required=False, help_text="A docker save tarball or an OCI archive (tar)")
    reference = forms.CharField(
        required=False,
        max_length=1024,
        label="…or a registry reference",
        help_text="Pulled by a worker and pinned to the digest the tag points at now",
        widget=forms.TextInput(attrs={"placeholder": "registry.example.com/app:tag", "autocomplete": "off"}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("file")) == bool(data.get("reference", "").strip()):
            raise forms.ValidationError("Choose a file to upload or give a registry reference (one of them).")
        return data


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=CaseStatus.choices)


class NarrativeForm(forms.ModelForm):
    class Meta:
        model = Case
        fields = [*LEAD_FIELDS, *NARRATIVE_FIELDS]
        widgets = {name: forms.Textarea(attrs={"rows": 4}) for name in NARRATIVE_FIELDS}
        help_texts = {
            "root_cause": "Markdown",
            "impact": "Markdown",
            "detection": "How it was noticed and what triggered the response (Markdown)",
            "actions_mitigate": "What stops the damage now (Markdown list)",
            "actions_prevent": "What stops it happening again (Markdown list)",
        }

    def __init__(self, *args, lead: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not lead:
            for name in LEAD_FIELDS:
                self.fields[name].disabled = True


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.INVESTIGATOR)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError("No such user.")
        return user


class TriageForm(forms.Form):
    status = forms.ChoiceField(choices=TriageStatus.choices, required=False)
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required for a false positive or an accepted risk.",
    )
    assignee = forms.ChoiceField(required=False)

    def __init__(self, *args, members=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", "Unassigned")] + [(str(u.pk), u.username) for u in members]


BULK_ACTIONS = [
    ("confirmed", "Confirm"),
    ("false_positive", "False positive"),
    ("accepted", "Accept risk"),
    ("resolved", "Resolved"),
    ("open", "Reopen"),
    ("assign", "Assign to…"),
]


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    reason = forms.CharField(required=False)
    assignee = forms.ChoiceField(required=False)
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("matching", "matching")], required=False)

    def __init__(self, *args, members=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", "Nobody")] + [(str(u.pk), u.username) for u in members]


class CommentForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Comment")


class TimelineEntryForm(forms.Form):
    occurred_at = forms.DateTimeField(
        label="Occurred at (UTC)",
        help_text=UTC_HELP,
        widget=forms.TextInput(attrs={"data-utc-input": "", "autocomplete": "off"}),
    )
    title = forms.CharField(max_length=300)
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Markdown")
    findings = forms.CharField(required=False, label="Findings", help_text="Finding numbers, e.g. 12, 40")
    evidence = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    kind = forms.ChoiceField(
        choices=[(TimelineKind.MANUAL, "Entry"), (TimelineKind.HEADING, "Heading")],
        initial=TimelineKind.MANUAL,
        required=False,
    )

    def __init__(self, *args, evidence=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["evidence"].choices = [(str(e.pk), e.original_name) for e in evidence]

    def clean_findings(self):
        raw = self.cleaned_data["findings"].replace(",", " ").replace("#", " ").split()
        try:
            return sorted({int(part) for part in raw})
        except ValueError:
            raise forms.ValidationError("Use finding numbers separated by commas.") from None


class NoteForm(forms.Form):
    title = forms.CharField(max_length=200)
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 12}), help_text="Markdown")


class ChecklistAddForm(forms.Form):
    template = forms.ChoiceField()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [(t.slug, t.title) for t in checklist_templates().values()]


class ItemForm(forms.Form):
    owner = forms.ChoiceField(required=False)
    due = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(required=False, max_length=2000)
    done = forms.BooleanField(required=False)

    def __init__(self, *args, members=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "No owner")] + [(str(u.pk), u.username) for u in members]


class NewItemForm(forms.Form):
    text = forms.CharField(max_length=500)
