"""The change request pages' addresses: a dataset's requests and its protection
rules under /datasets/<name>/, a request under /changes/<number>/."""

from __future__ import annotations

from django.urls import path

from changes import views

app_name = "changes"

urlpatterns = [
    path("datasets/<str:name>/changes/", views.change_list, name="change_list"),
    path("datasets/<str:name>/protections/", views.protection_save, name="protection_save"),
    path("datasets/<str:name>/protections/remove/", views.protection_remove, name="protection_remove"),
    path("changes/<int:number>/", views.change_detail, name="change_detail"),
    path("changes/<int:number>/approve/", views.change_approve, name="change_approve"),
    path("changes/<int:number>/merge/", views.change_merge, name="change_merge"),
    path("changes/<int:number>/close/", views.change_close, name="change_close"),
]
