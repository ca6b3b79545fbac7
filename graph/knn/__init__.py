"""The instruction kNN graph: exact top-k, building and extending a graph, its records, neighbour pages
and exports. May import: graph.store and gradwalk's face (topk.py: nothing but torch).
"""
