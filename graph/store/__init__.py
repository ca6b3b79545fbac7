"""The Neo4j adapter, the only holder of the driver, and the migration runner. May import: gradwalk's
face only.
"""
