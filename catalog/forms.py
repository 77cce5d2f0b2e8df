"""Forms of the dashboard. They parse and re-display input; what is allowed and what
a valid name is stays in the services, whose error sentences the pages show."""

from __future__ import annotations

from typing import TypedDict

from django import forms

from catalog.models import Dataset, Stage
from catalog.selectors import CATALOG_SORTS, CatalogQuery


def _names(text: str) -> list[str]:
    """'a, b  c' -> ['a', 'b', 'c']: commas or spaces separate names."""
    return [name for name in text.replace(",", " ").split() if name]


class CatalogFilterForm(forms.Form):
    """The catalog's search box, filters and sort, read from the query string."""

    q = forms.CharField(required=False, max_length=200)
    stage = forms.ChoiceField(required=False, choices=[("", "any stage"), *Stage.choices])
    owner = forms.CharField(required=False, max_length=150)
    keyword = forms.CharField(required=False, max_length=50)
    golden = forms.BooleanField(required=False)
    sort = forms.ChoiceField(required=False, choices=list(CATALOG_SORTS.items()))
    page = forms.IntegerField(required=False, min_value=1)

    def query(self) -> CatalogQuery:
        """The query asked for; a malformed value counts as not given."""
        data = self.cleaned_data if self.is_valid() else {}
        return CatalogQuery(
            text=(data.get("q") or "").strip(),
            stage=data.get("stage") or "",
            owner=(data.get("owner") or "").strip(),
            keyword=(data.get("keyword") or "").strip().lower(),
            golden=bool(data.get("golden")),
            sort=data.get("sort") or "updated",
            page=data.get("page") or 1,
        )


class DatasetChanges(TypedDict):
    """What `DatasetMetadataForm` says of a dataset, as `dataset_update` takes it."""

    description: str
    keywords: list[str]
    visibility: str
    owners: list[str]
    groups: list[str]


class DatasetMetadataForm(forms.Form):
    """What a steward may say about a dataset."""

    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Plain text; shown on the catalog.",
    )
    keywords = forms.CharField(
        required=False, help_text="Separated by commas or spaces, e.g. nlp, reviews, pii."
    )
    visibility = forms.ChoiceField(choices=Dataset.Visibility.choices, widget=forms.RadioSelect)
    owners = forms.CharField(required=False, help_text="User names, separated by commas.")
    groups = forms.CharField(required=False, help_text="Groups whose members may read a restricted dataset.")

    @classmethod
    def for_dataset(cls, dataset: Dataset) -> DatasetMetadataForm:
        return cls(
            initial={
                "description": dataset.description,
                "keywords": ", ".join(dataset.keywords.values_list("name", flat=True)),
                "visibility": dataset.visibility,
                "owners": ", ".join(dataset.owners.values_list("username", flat=True)),
                "groups": ", ".join(dataset.groups.values_list("name", flat=True)),
            }
        )

    def changes(self) -> DatasetChanges:
        """Keyword arguments for `dataset_update`."""
        data = self.cleaned_data
        return {
            "description": data["description"],
            "keywords": _names(data["keywords"]),
            "visibility": data["visibility"],
            "owners": _names(data["owners"]),
            "groups": _names(data["groups"]),
        }


class UploadForm(forms.Form):
    """A new version from the browser: where it goes and what it is. The files come
    from `request.FILES` and go straight to the upload service."""

    branch = forms.ChoiceField(help_text="The branch the new version goes on.")
    message = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "What changed, and why"}),
    )
    stage = forms.ChoiceField(
        required=False,
        choices=[("", "same as before"), *Stage.choices],
        help_text="The lifecycle stage of the data in this version.",
    )
    code = forms.CharField(
        required=False,
        max_length=700,
        label="Code",
        widget=forms.TextInput(attrs={"placeholder": "https://git.example.org/team/repo#3f2a9c1"}),
        help_text="The code that made this data: a git repository, then # and a commit or branch.",
    )

    def __init__(self, *args, branches: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        branch = self.fields["branch"]  # a copy of the field above, this form's own
        assert isinstance(branch, forms.ChoiceField)
        branch.choices = [(name, name) for name in branches]
        if branches:
            branch.initial = branches[0]


class NewDatasetForm(forms.Form):
    """The first upload of a dataset, which creates it (as a first push does)."""

    name = forms.CharField(
        max_length=100,
        help_text="Letters, digits, '.', '_' and '-'; it names the dataset everywhere, e.g. reviews-en.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    message = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "Where this data comes from"}),
    )
    stage = forms.ChoiceField(choices=Stage.choices, initial=Stage.RAW)
