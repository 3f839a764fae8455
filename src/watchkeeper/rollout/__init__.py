"""Deployments, traffic policies and the rollout controller: shadow, canary, blue-green, A/B."""
