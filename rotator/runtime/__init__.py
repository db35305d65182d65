"""The process around the work: hardening at start, client-side rate limits, the background HTTP
server, and failpoints for the crash tests."""
