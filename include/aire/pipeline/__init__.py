"""A pipeline run: its context, the stages and their registry, the in-process runner,
`aire status`, the embedded home's set-up and the demo.
"""
