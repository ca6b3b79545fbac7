"""Queued work: selection jobs, feature runs and their extension, graph builds, the Celery producer.
May import: platform.artifacts, shared; graph.
"""
