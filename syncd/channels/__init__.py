"""Marketplace channel clients: one module per platform behind the
:class:`syncd.channels.base.Channel` protocol; build one with
:func:`syncd.channels.base.make_channel`."""
