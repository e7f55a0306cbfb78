"""Passport-ready grading records, their exports (IDTA-02035, Catena-X, AAS, raw data) and signing.

References: ``shared/reference/passport.md`` (models, clauses, unit defects) and
``shared/reference/reliability.md`` sections 3 and 6 (P1-P4, D6, X2).
"""
