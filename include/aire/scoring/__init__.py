"""Batch scoring inside the champion's operating design domain: verify-before-load, ODD
verdicts, fallback, a row-hash cache, shadow challengers, atomic output and monitoring."""
