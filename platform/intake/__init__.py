"""Data in: record readers and normalising, pools and targets, import history. May import:
platform.shared, graph.store, gradwalk's face.
"""
