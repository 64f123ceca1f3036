"""uow for Django: a unit of work per request (``pip install 'uow[django]'``).

In settings:

```python
MIDDLEWARE = [..., "uow.contrib.django.UnitOfWorkMiddleware"]   # last
UOW = {"URI": "mongodb://localhost:27017", "DATABASE": "shop", "OPTIONS": {}}
```

Views and the services they call reach the request's session as
``uow.current_session()``; services decorated with ``@uow.unit_of_work()`` join
it. ``uow.contrib.django.testing`` gives each test a clean database.
"""

from .middleware import UnitOfWorkMiddleware, configure_from_settings

__all__ = ["UnitOfWorkMiddleware", "configure_from_settings"]
