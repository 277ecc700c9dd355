"""Sending webhook requests: the one place the event deliverer's HTTP lives.

`service` speaks no HTTP (its import contract); the assembly hands this sender to the registry's
event service, as it hands the pull-through cache its upstream client.
"""
