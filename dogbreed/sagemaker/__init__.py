"""SageMaker adapters: the training-container contract (``environment``: SM_* variables, channels,
torchrun) and SageMaker SDK v3 builders: training jobs, tuning, endpoints, Batch Transform and the Model Registry.

The SageMaker Python SDK is imported lazily, inside the functions that build SDK objects.
"""
