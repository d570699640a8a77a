"""Durable background jobs: a queue in the database, workers that claim jobs under a lease."""
