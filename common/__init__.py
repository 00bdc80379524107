"""Small utilities host and centre both use that are not part of the wire contract."""
