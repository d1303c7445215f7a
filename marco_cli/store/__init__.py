"""The model store: the registry (models.yaml merged with the user's), downloads from the
package, the cache or the Hub, and GGUF checks. Nothing here runs a model."""
