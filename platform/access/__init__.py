"""Who may do what and at what cost: tokens and roles, web sessions, the read-only Cypher guard,
request limits, and what browsers may do with an answer (security headers).
May import: platform.shared, graph.store.
"""
