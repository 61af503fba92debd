"""Error analysis: out-of-sample probabilities, confident learning, the most-confident
review and the leakage check, what training does with suspects, and the files people read.
"""
