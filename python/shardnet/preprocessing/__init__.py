"""Image loading and conversion with Keras' preprocessing API (shardnet.preprocessing.image)."""
from . import image  # noqa: F401
