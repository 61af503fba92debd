"""The transformer recipe: sequence classification fine-tuned from a pinned pretrained base.

``directory`` holds the model directory format and scoring, ``training`` the fine-tuning
loop (full or LoRA). ``transformers`` is imported inside these modules only: importing
``aire.model`` must not pay its seconds of import time.
"""
