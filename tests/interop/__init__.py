"""Helpers and client scripts for the server tests that drive hegelion-server as a real process."""
