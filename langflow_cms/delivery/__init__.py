"""Delivery: entries on the wire, the outbox, the disk spool and the transport, one path per credential."""
