"""attack15: schema changes (legacy and newer stored documents), the query API,
copies made inside a transaction, the identity map and inspection answers
(black-box, from SPEC.md and docs/). The ``db`` fixture comes from
tests/conftest.py (mongomock and SecantusDB lanes)."""

from __future__ import annotations

import pytest

from tests._blackbox import _close_sessions

__all__ = ["_close_sessions"]

# Known defects this suite found (session 16), each pinned by a strict xfail until
# fixed: a fix makes its test pass and the strict marker fail, so it is removed then.
_DEFECTS: dict[str, str] = {
    "test_int_given_to_float_field_is_stored_as_double": (
        "D5: an int given to a float field is stored as an int (docs: double)"
    ),
    "test_ref_list_mutation_accepts_docs_and_ids_refuses_others": (
        "D6: a document or id put in a Ref list reads as itself until reloaded"
    ),
    "test_legacy_value_loads_kept_and_replaced": (
        "D1: $max/$min over a stored value of another type (needs $set)"
    ),
    "test_copy_of_copy": (
        "D2: a copy of a copy made in an open transaction lacks the committed snapshot"
    ),
    "test_copy_of_document_deleted_in_the_transaction": (
        "D4: a copy of a document deleted in a transaction carries no snapshot"
    ),
    "test_copy_of_document_let_go_of_after_its_flush": (
        "D3: a copy of a document let go of in an open transaction lacks the committed snapshot"
    ),
}
_FAILING = frozenset(
    {
        "test_int_given_to_float_field_is_stored_as_double[mongomock]",
        "test_int_given_to_float_field_is_stored_as_double[secantus]",
        "test_ref_list_mutation_accepts_docs_and_ids_refuses_others[mongomock]",
        "test_ref_list_mutation_accepts_docs_and_ids_refuses_others[secantus]",
        "test_legacy_value_loads_kept_and_replaced[mongomock-max_over_string]",
        "test_legacy_value_loads_kept_and_replaced[mongomock-min_over_string]",
        "test_legacy_value_loads_kept_and_replaced[mongomock-max_over_object]",
        "test_legacy_value_loads_kept_and_replaced[secantus-max_over_string]",
        "test_legacy_value_loads_kept_and_replaced[secantus-max_over_bool]",
        "test_legacy_value_loads_kept_and_replaced[secantus-max_over_object]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-deepcopy-commit]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-deepcopy-rollback]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-deepcopy-close]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-deepcopy-failed_flush]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-deepcopy-transaction_block]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-pickle-commit]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-pickle-rollback]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-pickle-close]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-pickle-failed_flush]",
        "test_copy_of_document_deleted_in_the_transaction[secantus-pickle-transaction_block]",
        "test_copy_of_copy[secantus-deepcopy-rollback-before_end]",
        "test_copy_of_copy[secantus-deepcopy-close-before_end]",
        "test_copy_of_copy[secantus-deepcopy-failed_flush-before_end]",
        "test_copy_of_copy[secantus-pickle-rollback-before_end]",
        "test_copy_of_copy[secantus-pickle-close-before_end]",
        "test_copy_of_copy[secantus-pickle-failed_flush-before_end]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-deepcopy-rollback-expunge]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-deepcopy-rollback-clear_cache]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-deepcopy-close-expunge]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-deepcopy-close-clear_cache]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-pickle-rollback-expunge]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-pickle-rollback-clear_cache]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-pickle-close-expunge]",
        "test_copy_of_document_let_go_of_after_its_flush[secantus-pickle-close-clear_cache]",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        test = item.nodeid.split("::", 1)[1]
        if test in _FAILING:
            reason = _DEFECTS[test.split("[", 1)[0]]
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
