"""Lowerdir scanner: a Django app around the Django-free engine in :mod:`scanner.engine`."""
