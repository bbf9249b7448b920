"""The CoreCluster's API as the operator reads it: names, the spec's fields and
their bounds, quantities, placement, and the typed spec they parse into.

Everything here is pure and is the lowest layer: a change to what a user may
write in a CoreCluster starts here, and nothing here knows about Kubernetes
clients, kopf or the network.
"""
