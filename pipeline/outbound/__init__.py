"""What leaves the system: mail and webhooks."""
