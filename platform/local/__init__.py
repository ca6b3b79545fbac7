"""The services on this machine: the stack (Neo4j, Redis, workers, API, s3proxy), the launchers,
doctor. May import: platform.work, access, artifacts; graph.store.
"""
