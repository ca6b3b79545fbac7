"""The pure selection algorithms: PCA anchoring, the walk, scoring, subsets and the method registry.
May import: numpy, torch and gradwalk's face; no store, driver, queue or web.
"""
