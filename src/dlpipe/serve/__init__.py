"""`dlpipe serve`: the inference API for a model folder.

server.py runs it (uvicorn, draining on SIGTERM); app.py holds the routes; v2.py the Open
Inference Protocol; inputs.py the request checks; batching.py the batcher; operations.py metrics
and auth; runtime.py the model (ONNX Runtime or PyTorch).
"""
