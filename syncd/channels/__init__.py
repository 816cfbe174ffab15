"""Marketplace channel clients: one module per platform behind the
:class:`syncd.channels.base.Channel` protocol; build one with
:func:`syncd.channels.base.make_channel`.

The contract module is loaded first, whichever module is imported: it
re-exports the plumbing of :mod:`syncd.channels.http` and
:mod:`syncd.channels.tokens`, which build on it.
"""

from syncd.channels import base as base  # load order, see above
