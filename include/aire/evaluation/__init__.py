"""Evaluation of a candidate: quality against the champion with paired error bars,
data drift, group fairness, and the evaluation report the gate reads.
"""
