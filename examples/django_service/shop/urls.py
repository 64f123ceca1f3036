"""The shop's URLs."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("customers/", views.open_account, name="open-account"),
    path("customers/<str:customer_id>/", views.customer, name="customer"),
    path("customers/<str:customer_id>/orders/", views.place_order, name="place-order"),
]
