"""What exists and its lifecycle: listings, dependants, deletion, names. May import: platform.work,
intake, access, artifacts, shared; graph.knn, graph.store.
"""
