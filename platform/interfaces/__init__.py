"""The ways in: the REST API and its routes, the web pages, the CLI, the Python client. May import:
every platform room, graph. The client imports only platform.shared and platform.versions.exports.
"""
