"""Alert sinks: Alertmanager API v2, HTTP webhook with spool, ZeroMQ PUB."""
