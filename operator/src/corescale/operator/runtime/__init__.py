"""The operator at run time: kopf's handlers, the reconcile that acts on one
CoreCluster, the watches of its children, the one module of Kubernetes API
calls (kube), and the memory of the operator's own writes.

This is the only layer that talks to the API server; it calls the pure
layers below it (api, decide, autoscaler) to know what to do.
"""
