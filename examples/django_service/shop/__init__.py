"""The shop app: customers place orders; the data is kept by uow."""
