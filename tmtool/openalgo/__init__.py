"""Adapters to OpenAlgo: the REST client (implements the engine's ``Broker``) and
the WebSocket feed (implements ``Feed``).  All I/O; no decisions."""
