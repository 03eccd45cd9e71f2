"""jupyter_amlflow: sign in to Azure from a notebook and log every mlflow call to Azure ML."""

__version__ = "0.1.0"
