"""Datasets and their immutable versions: rows, exports, generations. May import: platform.work,
artifacts, shared; graph.knn, graph.store.
"""
