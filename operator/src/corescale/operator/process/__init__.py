"""The operator's process: its settings from the environment, its logs, its
own Prometheus metrics and its heap tuning; shared by the runtime and the
autoscaler, and independent of what a CoreCluster asks for.
"""
