"""The demo pipeline and the pinned data sources it reads. May import: platform.local and the record
rooms below it; graph.store.
"""
