"""Deployment of a trained F: SavedModel for TF Serving and ONNX for the edge, each checked against Keras at export."""
