SparseCode = None
