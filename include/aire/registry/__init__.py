"""MLflow tracking and the model registry, as the pipeline uses them.
"""
