"""openbench: benchmark self-hosted open models against closed APIs on your own tasks."""

__version__ = "0.1.0"
