"""What passes between the workflows, their activities and the doors: one module per workflow.

Small on purpose: ids, counts and instants — never a population, a selection or a plan file
(payloads are stored in the event history for years). Timestamps are always passed in, never
defaulted from the clock, because models are built inside workflow code too. Field names and types
are a contract with the histories already running.
"""
