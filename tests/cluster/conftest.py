"""Cluster tests: `fnctl server` roles as processes on one Postgres, sharing the Docker engine."""
