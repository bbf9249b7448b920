"""The 1-second autoscaler: reading the workers' own figures (load), the
scale decision over a window of them (decision), who owns the worker count
while autoscaling is on (ownership), and the loop that scrapes the pods
(gather, the only module here that does I/O).

It decides a count; applying it is the runtime's job (runtime.autoscaling).
"""
