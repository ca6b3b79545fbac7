"""Who may do what and at what cost: tokens and roles, the read-only Cypher guard, request limits.
May import: platform.shared, graph.store.
"""
