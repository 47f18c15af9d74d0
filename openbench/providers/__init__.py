"""Model providers. Each module imports its heavy dependencies itself; see ``openbench.registry``."""
