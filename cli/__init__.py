"""trainspec: training jobs as code, compiled into resolved, traceable SageMaker plans."""

__version__ = "0.1.0"

__all__ = ["__version__"]
