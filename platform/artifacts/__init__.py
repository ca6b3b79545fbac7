"""The artifact store: feature shards (feature_store) over one file layer (files: a folder or S3) and
the host's copies (host_cache). May import: gradwalk's face only.
"""
