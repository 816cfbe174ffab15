"""Shipped test helpers: the marketplace sandboxes (and fakes). Nothing in syncd
imports this package."""
