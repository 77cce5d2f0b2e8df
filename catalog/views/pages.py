"""Pages of the dashboard. Thin: parse the request, call one selector or service,
render. Who may do what is decided by the services and `catalog.permissions`; their
errors become pages in one place (`catalog.views.errors`): NotFound → 404,
Forbidden → 403, any other UserError → the form again with its sentence."""

from __future__ import annotations

import logging
import mimetypes
import posixpath
import sys
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseServerError,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from catalog import permissions, selectors
from catalog.domain.formatting import human_bytes
from catalog.errors import NotFound, UserError
from catalog.forms import CatalogFilterForm, DatasetMetadataForm, NewDatasetForm, UploadForm
from catalog.models import Dataset, Stage, Version
from catalog.selectors import diff, previews
from catalog.selectors.changes import change_report
from catalog.selectors.exports import file_stream, tar_stream
from catalog.services.datasets import dataset_update
from catalog.services.uploads import UploadLimitHandler, UploadRequest, upload_limit, version_upload
from catalog.views.charts import label_shift_svg
from catalog.views.errors import form_error
from catalog.views.htmx import HtmxHttpRequest

logger = logging.getLogger(__name__)

COMPARE_ROWS = 1000


def _dataset_for(request: HttpRequest, name: str, write: bool = False) -> Dataset:
    """The dataset `name` as the signed-in user may see it: 404 when it does not
    exist or is hidden from them, 403 when `write` and they may not change it."""
    dataset = selectors.dataset_get(name, request.user)
    if write:
        permissions.require_write(request.user, dataset)
    return dataset


def _version_for(dataset: Dataset, ref: str) -> Version:
    """The version a page's address names (404 when it names none)."""
    return selectors.version_get(dataset, ref)


# -- catalog ------------------------------------------------------------------------------


@login_required
@require_GET
def dataset_list(request: HtmxHttpRequest) -> HttpResponse:
    """The catalog: search, filters, sort and pages. An htmx request (typing in the
    search box) gets only the results."""
    form = CatalogFilterForm(request.GET)
    catalog = selectors.catalog_page(user=request.user, query=form.query())
    context = {
        "form": form,
        "catalog": catalog,
        "query": catalog.query,
        "sorts": selectors.CATALOG_SORTS,
        "stages": Stage.values,
        "can_create": permissions.has_role(request.user, permissions.STEWARD),
    }
    template = "catalog/_dataset_results.html" if request.htmx else "catalog/dataset_list.html"
    return render(request, template, context)


@login_required
@require_GET
def dataset_detail(request: HttpRequest, name: str) -> HttpResponse:
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    overview = selectors.dataset_overview(user=request.user, name=name, page=page)
    return render(request, "catalog/dataset_detail.html", {"o": overview, "dataset": overview.dataset})


@login_required
@require_http_methods(["GET", "POST"])
def dataset_edit(request: HttpRequest, name: str) -> HttpResponse:
    """Edit what is said about a dataset. The service checks the role again on save."""
    dataset = _dataset_for(request, name, write=request.method == "GET")
    if request.method == "POST":
        form = DatasetMetadataForm(request.POST)
    else:
        form = DatasetMetadataForm.for_dataset(dataset)
    with form_error() as refused:
        if request.method == "POST" and form.is_valid():
            dataset_update(user=request.user, dataset=dataset, **form.changes())
            messages.success(request, f"Saved the details of {dataset.name}.")
            return redirect("catalog:dataset_detail", name=dataset.name)
    return render(
        request,
        "catalog/dataset_edit.html",
        {"dataset": dataset, "form": form, "error": refused.message},
        status=400 if refused or form.errors else 200,
    )


# -- versions and files -----------------------------------------------------------------------


@login_required
@require_GET
def version_detail(request: HtmxHttpRequest, name: str, version_id: str) -> HttpResponse:
    """A version's files, one folder at a time (`?path=`). A path naming a file
    goes to that file's page. An htmx request gets only the listing."""
    path = request.GET.get("path", "")
    overview = selectors.version_overview(user=request.user, name=name, ref=version_id, path=path)
    if overview.file_path:
        return redirect(
            "catalog:file_detail", name=name, version_id=overview.version.semver, file_path=overview.file_path
        )
    context = {
        "o": overview,
        "dataset": overview.dataset,
        "version": overview.version,
        "pull_command": f"python manage.py strata pull {overview.dataset.name}@{overview.version.semver} DEST",
    }
    template = "catalog/_listing.html" if request.htmx else "catalog/version_detail.html"
    return render(request, template, context)


def _file_context(request: HttpRequest, name: str, version_id: str, file_path: str) -> dict[str, object]:
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    entry, preview = previews.file_preview(version, file_path)
    parts = [part for part in file_path.strip("/").split("/") if part]
    crumbs = [(part, "/".join(parts[: index + 1])) for index, part in enumerate(parts[:-1])]
    return {
        "dataset": dataset,
        "version": version,
        "entry": entry,
        "preview": preview,
        "file_path": "/".join(parts),
        "file_name": parts[-1],
        "folder": "/".join(parts[:-1]),
        "crumbs": crumbs,
    }


@login_required
@require_GET
def file_detail(request: HtmxHttpRequest, name: str, version_id: str, file_path: str) -> HttpResponse:
    """One file of a version: its size, digest, a preview and the download."""
    context = _file_context(request, name, version_id, file_path)
    template = "catalog/_preview.html" if request.htmx else "catalog/file_detail.html"
    return render(request, template, context)


@login_required
@require_GET
def file_download(request: HttpRequest, name: str, version_id: str, file_path: str) -> StreamingHttpResponse:
    """One file, streamed as it is read and verified."""
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    stream = file_stream(version, file_path)
    content_type = mimetypes.guess_type(file_path)[0] or "application/octet-stream"
    response = StreamingHttpResponse(stream.chunks, content_type=content_type)
    response["Content-Length"] = str(stream.entry.size)
    response["Content-Disposition"] = content_disposition_header(True, posixpath.basename(file_path))
    return response


@login_required
@require_GET
def file_thumbnail(request: HttpRequest, name: str, version_id: str, file_path: str) -> HttpResponse:
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    data, content_type = previews.thumbnail(version, file_path)
    response = HttpResponse(data, content_type=content_type)
    # A version never changes, so neither does its thumbnail.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@login_required
@require_GET
def version_tar(request: HttpRequest, name: str, version_id: str) -> StreamingHttpResponse:
    """The whole version as a tar, produced member by member: memory stays flat
    whatever the version's size."""
    dataset = _dataset_for(request, name)
    version = _version_for(dataset, version_id)
    response = StreamingHttpResponse(tar_stream(version), content_type="application/x-tar")
    filename = f"{dataset.name}-{version.semver}.tar"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


# -- compare ------------------------------------------------------------------------------------


# A table larger than this is compared with `strata diff`, not in a page request.
COMPARE_TABLE_BYTES = 64 * 1024 * 1024


@login_required
@require_GET
def compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two versions side by side: the files added, removed and modified. Without a
    query it compares the head of the default branch with its parent."""
    dataset = _dataset_for(request, name)
    old_ref = request.GET.get("from", "").strip()
    new_ref = request.GET.get("to", "").strip()
    old = new = None
    error = ""
    if not old_ref and not new_ref:
        try:
            new = selectors.resolve_ref(dataset, None)
            old = new.parent
        except NotFound:
            new = None
    elif not old_ref or not new_ref:
        error = "Pick two versions to compare: both “from” and “to” are needed."
    elif len(old_ref) > 100 or len(new_ref) > 100:
        error = "Those do not look like versions: give a version number such as 1.2.0, a tag or a branch."
    else:
        # The two versions are named in the form: one that is not there is said beside it.
        with form_error(not_found=True) as refused:
            old = selectors.version_get(dataset, old_ref)
            new = selectors.version_get(dataset, new_ref)
        if refused:
            error = f"Cannot compare: {refused.error}"
    changes = diff.diff_versions(old, new) if old is not None and new is not None else None
    tables = []
    if changes is not None and changes.modified:
        # Row-level analysis of the changed tables, bounded for a page request.
        key = request.GET.get("key", "").strip()[:100] or None
        assert old is not None and new is not None  # `changes` is their diff
        report = change_report(old, new, key=key, max_table_bytes=COMPARE_TABLE_BYTES, max_tables=5)
        tables = [
            (
                table,
                label_shift_svg(table.labels, old_name=old.semver, new_name=new.semver)
                if table.labels
                else "",
            )
            for table in report.tables
        ]
    context = {
        "dataset": dataset,
        "choices": selectors.version_choices(dataset),
        "old": old,
        "new": new,
        "old_ref": old.semver if old else old_ref,
        "new_ref": new.semver if new else new_ref,
        "diff": changes,
        "tables": tables,
        "key": request.GET.get("key", ""),
        "shown": changes.changes[:COMPARE_ROWS] if changes else [],
        "limit": COMPARE_ROWS,
        "error": error,
    }
    return render(request, "catalog/compare.html", context, status=400 if error else 200)


# -- uploads ------------------------------------------------------------------------------------


@csrf_exempt
@login_required
def upload(request: UploadRequest, name: str) -> HttpResponse:
    """Upload a new version of an existing dataset.

    The size limit must be in place before Django reads the body, which CSRF
    checking would do first: so this outer view is exempt and `_upload` below
    checks CSRF after adding the limit (Django's documented way).
    """
    if request.method == "POST":
        request.upload_handlers.insert(0, UploadLimitHandler(request))
    return _upload(request, name)


@csrf_protect
@require_http_methods(["GET", "POST"])
def _upload(request: HttpRequest, name: str) -> HttpResponse:
    # The form is offered only to those who may use it; a POST is judged by the
    # service itself, so a stale form from someone who lost the role is refused.
    dataset = _dataset_for(request, name, write=request.method == "GET")
    form = UploadForm(request.POST or None, branches=selectors.upload_choices(dataset))
    error = getattr(request, "upload_refused", "")
    status = 413 if error else 200
    if request.method == "POST" and not error and form.is_valid():
        with form_error() as refused:
            result = version_upload(
                user=request.user,
                dataset_name=dataset.name,
                uploads=request.FILES.getlist("files"),
                branch=form.cleaned_data["branch"],
                message=form.cleaned_data["message"],
                stage=form.cleaned_data["stage"],
                code=form.cleaned_data["code"],
            )
            return _uploaded(request, result)
        error, status = refused.message, refused.status
    if request.method == "POST" and not error and form.errors:
        status = 400
    context = {"dataset": dataset, "form": form, "error": error, "limit": upload_limit()}
    return render(request, "catalog/upload.html", context, status=status)


@csrf_exempt
@login_required
def dataset_new(request: UploadRequest) -> HttpResponse:
    """A new dataset from its first upload (see `upload` for the CSRF order)."""
    if request.method == "POST":
        request.upload_handlers.insert(0, UploadLimitHandler(request))
    return _dataset_new(request)


@csrf_protect
@require_http_methods(["GET", "POST"])
def _dataset_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        permissions.require_role(request.user, permissions.STEWARD, "create datasets")
    form = NewDatasetForm(request.POST or None)
    error = getattr(request, "upload_refused", "")
    status = 413 if error else 200
    if request.method == "POST" and not error and form.is_valid():
        name = form.cleaned_data["name"]
        with form_error() as refused:
            if Dataset.objects.filter(name=name).exists():
                raise UserError(f"a dataset named {name} already exists; upload a new version of it instead.")
            result = version_upload(
                user=request.user,
                dataset_name=name,
                uploads=request.FILES.getlist("files"),
                message=form.cleaned_data["message"],
                stage=form.cleaned_data["stage"],
            )
            return _uploaded(request, result)
        error, status = refused.message, refused.status
    if request.method == "POST" and not error and form.errors:
        status = 400
    return render(
        request,
        "catalog/upload.html",
        {"dataset": None, "form": form, "error": error, "limit": upload_limit()},
        status=status,
    )


def _uploaded(request: HttpRequest, result) -> HttpResponse:
    version = result.version
    if result.created:
        messages.success(
            request,
            f"Stored {result.dataset} {version.semver} on {result.branch}: {result.file_count} files; "
            f"{human_bytes(result.new_bytes)} of it new to the store.",
        )
    else:
        messages.info(
            request, f"Nothing changed: the upload is identical to {version.semver}, so no version was made."
        )
    return redirect("catalog:version_detail", name=result.dataset, version_id=version.semver)


# -- error pages ----------------------------------------------------------------------------------


def _message(exception: Exception | None) -> str:
    if exception is not None and exception.args and isinstance(exception.args[0], str):
        return exception.args[0]
    return ""


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"message": _message(exception)}, status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", {"message": _message(exception)}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    """Log the failure under a short reference that the page shows, so a report
    from a user finds its traceback."""
    reference = uuid.uuid4().hex[:10]
    logger.error(
        "internal error, reference %s: %s %s",
        reference,
        request.method,
        request.path,
        exc_info=sys.exc_info(),
    )
    try:
        return render(request, "500.html", {"reference": reference}, status=500)
    except Exception:  # the page itself failed: say it plainly
        return HttpResponseServerError(
            f"Something went wrong (reference {reference}).", content_type="text/plain"
        )
