from openbench.cli import entrypoint

entrypoint()
