"""runctl's built-in providers, one module each, registered through entry points.

Importing this package imports no provider module: each is imported the first
time its provider is used. ``runctl.list_providers()`` lists every registered
provider, built-in or plugin.
"""
