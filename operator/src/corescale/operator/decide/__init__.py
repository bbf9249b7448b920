"""What the operator decides, as pure functions: a parsed spec and the
observed children become desired objects (render), the actions that reach
them (plan), and the status and conditions that report them (status).

No API calls and no clocks of its own: every input is an argument, so each
decision is unit-tested with plain dicts.
"""
