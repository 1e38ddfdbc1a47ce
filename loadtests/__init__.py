"""The SPECweb99-like locust suite (specweb99-like.md §3, §4, §7, §8); the locustfile is specweb99.py."""
