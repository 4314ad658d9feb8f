"""REST handlers under /api/v1: thin, parse and check, call the domain, render."""
