"""From evidence to the champion alias: the gate, the optional human approval,
promotion under the alias lock, and rollback.
"""
