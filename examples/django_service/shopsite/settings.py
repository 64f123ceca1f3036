"""Settings of the example shop: its data lives in MongoDB, through uow.

Run on the embedded backend (``mongomock://``) unless ``UOW_MONGODB_URI`` names
a server. Django's own databases are not used at all.
"""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = "example-only-not-a-secret"  # an example, never deployed
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = ["shop"]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    # Last, closest to the view: one uow session per request (see its docstring).
    "uow.contrib.django.UnitOfWorkMiddleware",
]

ROOT_URLCONF = "shopsite.urls"
WSGI_APPLICATION = "shopsite.wsgi.application"

# No SQL database: the shop's documents are stored through uow.
DATABASES: dict[str, Any] = {}

UOW = {
    "URI": os.environ.get("UOW_MONGODB_URI") or "mongomock://shop",
    "DATABASE": "shop",
    # Session options for every request; a request that sends more than 50
    # commands is an N+1 loop to fix, not to serve.
    "OPTIONS": {"max_requests": 50},
}

USE_TZ = True
