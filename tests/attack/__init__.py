"""Attack scenarios (second attacker), written from SPEC.md v4 alone.

Each test reads the stored document with raw pymongo after flush/commit and
compares it with what the session holds, and where relevant with a reload in a
fresh session. They cover ground tests/scenarios does not: several changes at
different depths in one flush, explicit update() overrides, missing keys at
depth with every operator, partial documents combined with other features,
subclass hierarchies in embedded lists, dict keys with unusual characters,
failures midway through a flush, and lifecycle corners.
"""
