"""Third round of black-box attacks on uow: stored documents against the session,
for combinations of the SPEC's write rules (tests only; no library code)."""
