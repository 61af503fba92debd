"""The model recipes: the network and its directory format, preprocessing, and training.
"""
