"""Trust in model bytes: the signing key pair, signing and verifying, the checks around a
signed manifest, the hash-chained ledger, and verify-before-load of registered versions.
"""
