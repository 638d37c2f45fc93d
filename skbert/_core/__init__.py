"""The base layer: option vocabularies, reports, input checks, tokenization,
batch plans, version stamps and the artefact format. Standard library and numpy
only; imports nothing from skbert outside ``_core``.
"""
