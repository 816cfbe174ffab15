"""The running daemon: the admin server and its operator page."""
