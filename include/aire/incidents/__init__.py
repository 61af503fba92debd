"""Incidents: their types and table, the store, where they come from (failures, rejections,
SLO breaches), the reconciler, postmortem stubs, and notifiers.
"""
