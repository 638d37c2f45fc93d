"""One ONNX file of a fitted pipeline: the vectors graph, the
classifier head, the manifest, and the check against ``transform``.
"""
