"""Batchyard: AWS Batch, self-hosted."""

__version__ = "0.1.0"
