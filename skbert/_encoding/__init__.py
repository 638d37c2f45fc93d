"""Token states to vectors: the models that run a handle (torch or ONNX
Runtime), batching, pooling, the recipe's finish, the cached encode, and the
spec every option resolves to.
"""
