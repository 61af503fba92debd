"""Service-level objectives over a pipeline's run history: SLIs, error budgets, burn rates.
"""
