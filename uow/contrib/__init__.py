"""Integrations with frameworks, each an optional extra that ``import uow`` never loads.

``uow.contrib.django``: ``UnitOfWorkMiddleware`` and test helpers (``pip install
'uow[django]'``).
``uow.contrib.flask``: the ``UnitOfWork`` extension (``pip install 'uow[flask]'``).
"""
