from django import forms

from .models import Case


class CaseForm(forms.ModelForm):
    class Meta:
        model = Case
        fields = ["title", "summary", "severity"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 3})}


class EvidenceForm(forms.Form):
    file = forms.FileField(help_text="A docker save tarball, an OCI archive (tar)")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
