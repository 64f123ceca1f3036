"""A service layer without Django: ``configure``, ``@unit_of_work()``, ``current_session()``.

    python examples/service_layer.py

Services are plain functions. Each is a unit of work: called on its own it opens
a session, commits when it returns and rolls back when it raises; called from
another unit of work it joins that one, so composed services are all or nothing.
Runs on the embedded backend; set ``UOW_MONGODB_URI`` to run it on a server.
"""

from __future__ import annotations

import os
import sys

from bson import ObjectId

import uow
from uow import Document, Session, field

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_type


class Account(Document):
    __collection__ = "accounts"

    owner: str
    balance: int = field(default=0, on_update="$inc")  # concurrent transfers add up


class Transfer(Document):
    __collection__ = "transfers"

    source: uow.Ref[Account]
    target: uow.Ref[Account]
    amount: int


class InsufficientFunds(Exception):
    """The source account cannot pay the amount."""


# ----------------------------------------------------------------- services


@uow.unit_of_work()
def open_account(owner: str, deposit: int = 0) -> Account:
    account = Account(owner=owner, balance=deposit)
    uow.current_session().add(account)
    return account


@uow.unit_of_work()
def transfer(source_id: ObjectId, target_id: ObjectId, amount: int) -> Transfer:
    s: Session = uow.current_session()
    source, target = s.get(Account, source_id), s.get(Account, target_id)
    if source is None or target is None:
        raise uow.NotFound(f"no account {source_id if source is None else target_id}")
    if source.balance < amount:
        raise InsufficientFunds(f"{source.owner} has {source.balance}, not {amount}")
    source.balance -= amount
    target.balance += amount
    done = Transfer(
        source=uow.Ref(Account, source.id), target=uow.Ref(Account, target.id), amount=amount
    )
    s.add(done)
    return done


@uow.unit_of_work()
def pay_all(source_id: ObjectId, payments: dict[ObjectId, int]) -> list[Transfer]:
    """Several transfers, all or nothing: each ``transfer()`` joins this unit of work."""
    s: Session = uow.current_session()
    # One query for every account, before any change: later get()s are answered
    # by the identity map (and on a server without transactions, no query
    # autoflushes half of the payments before a later one fails).
    s.filter(Account, id__in=[source_id, *payments])
    return [transfer(source_id, target_id, amount) for target_id, amount in payments.items()]


@uow.unit_of_work()
def balances() -> dict[str, int]:
    s: Session = uow.current_session()
    return {a.owner: a.balance for a in s.query(Account).sort("owner")}


# -------------------------------------------------------------------- main


def main() -> None:
    # Once, at start-up: where sessions opened without arguments go.
    uow.configure(os.environ.get("UOW_MONGODB_URI") or "mongomock://examples", "uow_examples")
    with uow.unit_of_work() as s:
        s.clear_collection(Account, Transfer)

    ann = open_account("ann", deposit=100)
    bob = open_account("bob")
    cid = open_account("cid")

    # The decorator keeps the functions' signatures for type checkers.
    assert_type(ann, Account)
    assert_type(transfer(ann.id, bob.id, 30), Transfer)
    print("after one transfer:", balances())

    try:
        pay_all(ann.id, {bob.id: 50, cid.id: 50})  # 100 > 70: the second one fails
    except InsufficientFunds as exc:
        print("pay_all failed, nothing of it was written:", exc)

    final = balances()
    print("balances:", final)
    assert final == {"ann": 70, "bob": 30, "cid": 0}, final
    with uow.unit_of_work() as s:
        assert s.count(Transfer) == 1


if __name__ == "__main__":
    main()
