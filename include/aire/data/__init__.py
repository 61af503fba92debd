"""Batches and what is known about them: reading and writing tables, object storage,
the example data sets, the champion's reference profile, and validation.
"""
