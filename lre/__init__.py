"""Shared pieces of the LRE trust service.

``lre.v1`` holds the protobuf and gRPC modules generated from ``protos/`` by
``make gen``; the modules beside it are the small runtime both processes share
(configuration, JSON logs, gRPC serving).
"""
