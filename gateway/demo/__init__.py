"""`gateway demo` and what it stands on: stand-in providers that speak each wire format (standins.py,
stream_events.py), the demo credentials (auth.py), and the scripted run (run.py). Tests and benchmarks
use the same stand-ins."""
