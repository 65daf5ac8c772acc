"""federated-router: an OpenAI-compatible gateway that sends each request to the cheapest
model that can handle it, and meters what it spends."""

__version__ = "0.1.0"
