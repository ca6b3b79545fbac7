"""What client and server agree on: record shapes, statuses and limits (schemas), waiting on long work.
May import: gradwalk's face only.
"""
