from django.urls import path

from . import views

app_name = "catalog"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("datasets/<str:name>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<str:name>/versions/<str:version_id>/", views.version_detail, name="version_detail"),
]
