"""Celery task modules, one per area of work."""
