"""uow for Flask: a unit of work per request (``pip install 'uow[flask]'``).

```python
from flask import Flask
from uow.contrib.flask import UnitOfWork

app = Flask(__name__)
app.config.update(UOW_URI="mongodb://localhost:27017", UOW_DATABASE="shop")
UnitOfWork(app)            # or: unit = UnitOfWork(); unit.init_app(app)
```

Views and the services they call reach the request's session as
``uow.current_session()``; services decorated with ``@uow.unit_of_work()`` join
it. The session is committed when the view returns a response below 500, and
rolled back when the view raises (even if an error handler turns the exception
into a response) or the response is a 5xx. Flask is imported here only: the
core of uow never imports it.
"""

from .extension import UnitOfWork, configure_from_config

__all__ = ["UnitOfWork", "configure_from_config"]
